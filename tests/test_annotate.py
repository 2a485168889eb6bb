"""Tests of `shls-annotate`: its routes over HTTP, and its page in a real headless chromium
(clicks at pixel coordinates, keys, a drag, undo, save, segment), which is skipped where no
chromium and chromedriver are installed (`.ci/run` installs them)."""

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import jax
import numpy as np
import pytest
from PIL import Image

from shls_jax import checkpoints
from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.model import shls
from shls_jax.tools import annotate

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 80, 120
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
DRIVER = shutil.which('chromedriver')


def _frames() -> np.ndarray:
  """[2, H, W, 3] uint8: a red and a blue square on a grey gradient, moving right."""
  frames = np.zeros((2, HEIGHT, WIDTH, 3), np.uint8)
  frames[...] = np.linspace(80, 160, WIDTH, dtype=np.uint8)[None, None, :, None]
  for t in range(2):
    frames[t, 20:50, 20 + 4 * t : 55 + 4 * t] = (220, 40, 40)
    frames[t, 45:72, 75 + 4 * t : 105 + 4 * t] = (40, 40, 220)
  return frames


@pytest.fixture
def session(tmp_path):
  folder = tmp_path / 'frames'
  folder.mkdir()
  for t, frame in enumerate(_frames()):
    cv2.imwrite(str(folder / f'{t:05d}.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  ckpt = checkpoints.save_variables(tmp_path / 'ckpt', shls.init_variables(jax.random.PRNGKey(0)))
  frames = annotate.Frames(frame_io.VideoSource(folder))
  return annotate.Session(
    frames,
    tmp_path / 'first.png',
    slic_segments=40,
    engine_settings={'checkpoint': str(ckpt), 'slic_segments': 30},
    segment_out=tmp_path / 'segmented',
  )


@pytest.fixture
def url(session):
  server = annotate.serve(session)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{server.server_address[1]}'
  server.shutdown()
  server.server_close()


def _post(url: str, body) -> tuple[int, dict]:
  request = urllib.request.Request(
    url, json.dumps(body).encode(), {'Content-Type': 'application/json'}
  )
  try:
    with urllib.request.urlopen(request) as response:
      return response.status, json.load(response)
  except urllib.error.HTTPError as error:
    return error.code, json.load(error)


def test_routes_serve_frames_and_labels_and_refuse_bad_requests(session, url):
  assert url.startswith('http://127.0.0.1:')
  with urllib.request.urlopen(f'{url}/info') as response:
    info = json.load(response)
  assert (info['frames'], info['height'], info['width']) == (2, HEIGHT, WIDTH)
  with urllib.request.urlopen(f'{url}/labels/1.png') as response:
    encoded = np.asarray(Image.open(response).convert('RGB')).astype(np.int64)
  labels = session.labels(1)
  np.testing.assert_array_equal(encoded[..., 0] + 256 * encoded[..., 1], labels)
  count = int(labels.max())
  assert _post(f'{url}/save', {'frame': 1, 'assignment': [0] * (count - 1)})[0] == 400
  assert _post(f'{url}/save', {'frame': 1, 'assignment': [10] * count})[0] == 400
  status, reply = _post(f'{url}/save', {'frame': 1, 'assignment': [0] * count})
  assert status == 400 and 'nothing to save' in reply['error']
  assert _post(f'{url}/save', {'frame': 7, 'assignment': []})[0] == 404
  assert _post(f'{url}/segment', {})[1]['error'] == 'save an annotation first'
  assert not session.out.exists()
  with pytest.raises(urllib.error.HTTPError):
    urllib.request.urlopen(f'{url}/overlay/0.jpg')


def _driver():
  webdriver = pytest.importorskip('selenium.webdriver', reason='selenium is a dev extra')
  from selenium.webdriver.chrome.service import Service

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in (
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--window-size=900,700',
  ):
    options.add_argument(argument)
  return webdriver.Chrome(service=Service(DRIVER), options=options)


def _inside(labels: np.ndarray, y: int, x: int) -> int:
  """The label at (y, x), checked to fill its 7x7 neighbourhood (a click a pixel off lands on it)."""
  patch = labels[y - 3 : y + 4, x - 3 : x + 4]
  assert np.all(patch == labels[y, x]), f'({y}, {x}) is near a superpixel boundary'
  return int(labels[y, x])


def _point(labels, y0, y1, x0, x1) -> tuple[int, int]:
  """A pixel of the window whose 7x7 neighbourhood is one superpixel."""
  for y in range(y0, y1):
    for x in range(x0, x1):
      if np.all(labels[y - 3 : y + 4, x - 3 : x + 4] == labels[y, x]):
        return y, x
  raise AssertionError('no superpixel interior in the window')


@pytest.mark.skipif(
  not (CHROMIUM and DRIVER), reason='no chromium and chromedriver (apt install chromium-driver)'
)
def test_page_in_a_browser_saves_the_clicked_superpixels_and_segments(session, url):
  from selenium.webdriver.common.action_chains import ActionChains
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait

  labels = session.labels(1)
  red = _point(labels, 24, 46, 28, 55)
  blue = _point(labels, 50, 68, 83, 105)
  left = _point(labels, 5, 15, 5, 30)
  right = _point(labels, 5, 15, 85, 115)
  driver = _driver()
  try:
    driver.get(url + '/')
    wait = WebDriverWait(driver, 60)
    body = driver.find_element(By.TAG_NAME, 'body')
    wait.until(lambda d: body.get_attribute('data-frame') == '0')
    driver.find_element(By.ID, 'next').click()
    wait.until(lambda d: body.get_attribute('data-frame') == '1')
    canvas = driver.find_element(By.ID, 'canvas')
    status = driver.find_element(By.ID, 'status')

    def at(point):  # Selenium offsets are from the element's centre
      y, x = point
      return x + 0.5 - WIDTH / 2, y + 0.5 - HEIGHT / 2

    def click(point):
      ActionChains(driver).move_to_element_with_offset(
        canvas, *map(int, at(point))
      ).click().perform()

    click(red)  # object 1 is chosen at start
    body.send_keys('3')
    click(blue)
    click(blue)  # the chosen object's superpixel: given back to the background
    body.send_keys('z')  # undone: object 3 again
    # A drag paints every superpixel it crosses, then is undone whole.
    chain = ActionChains(driver).move_to_element_with_offset(canvas, *map(int, at(left)))
    chain.click_and_hold()
    steps = 10
    for k in range(steps):
      chain.move_to_element_with_offset(
        canvas, *map(int, at(np.add(left, np.subtract(right, left) * (k + 1) / steps)))
      )
    chain.release().perform()
    driver.find_element(By.ID, 'save').click()
    wait.until(lambda d: 'saved' in status.text)
    saved = mask_io.read_indexed_png(session.out)
    assert Image.open(session.out).mode == 'P'
    painted = np.unique(labels[saved == 3])
    assert _inside(labels, *left) in painted and _inside(labels, *right) in painted
    assert len(painted) > 3  # the superpixels between the ends too
    body.send_keys('z')
    driver.find_element(By.ID, 'save').click()
    wait.until(lambda d: 'saved' in status.text and '--mask_frame 1' in status.text)
    saved = mask_io.read_indexed_png(session.out)
    expected = np.zeros_like(labels)
    expected[labels == _inside(labels, *red)] = 1
    expected[labels == _inside(labels, *blue)] = 3
    np.testing.assert_array_equal(saved, expected)
    # Segment from the saved frame; the page then plays the overlay.
    driver.find_element(By.ID, 'segment').click()
    player = driver.find_element(By.ID, 'player')
    wait.until(lambda d: '/overlay/' in (player.get_attribute('src') or ''))
    masks = sorted((session.segment_out / 'masks').glob('*.png'))
    assert len(masks) == 2
    np.testing.assert_array_equal(mask_io.read_indexed_png(masks[1]), expected)
  finally:
    driver.quit()


def _annotate(*args) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'shls_jax.tools.annotate', '--no_browser', *map(str, args)],
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS='cpu'),
    capture_output=True,
    text=True,
    timeout=120,
  )


def test_command_refuses_bad_settings_in_one_line(session, tmp_path):
  folder = session.frames.source.path
  (tmp_path / 'taken.png').write_bytes(b'a user file')
  cases = [
    (['--video', tmp_path / 'none', '--out', tmp_path / 'a.png'], 'does not exist'),
    (['--video', folder, '--out', tmp_path / 'taken.png'], '--overwrite'),
    (['--video', folder, '--out', tmp_path / 'a.jpg'], 'must name a .png'),
    (['--video', folder, '--out', tmp_path / 'a.png', '--frame', '5'], 'has no frame 5'),
    (['--video', folder, '--out', tmp_path / 'a.png', '--checkpoint', 'x'], 'both --checkpoint'),
  ]
  for args, message in cases:
    done = _annotate(*args)
    assert done.returncode != 0 and message in done.stderr, (message, done.stderr[-2000:])
    assert 'Traceback' not in done.stderr and len(done.stderr.strip().splitlines()) == 1
  assert (tmp_path / 'taken.png').read_bytes() == b'a user file'
