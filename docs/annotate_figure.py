"""Takes the README's picture of the annotation page: `shls-annotate` on a DAVIS sequence, the
superpixels lying mostly inside frame 0's annotation clicked in headless chromium, then a
screenshot of the page.

  python docs/annotate_figure.py --frames=../shared/data/davis2016-sample/JPEGImages/480p/dog \
      --mask=../shared/data/davis2016-sample/Annotations/480p/dog/00000.png \
      --out=docs/annotate.png
"""

import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
from absl import app, flags
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from shls_jax.io import frames as frame_io
from shls_jax.io import masks as mask_io
from shls_jax.tools import annotate

FLAGS = flags.FLAGS
flags.DEFINE_string('frames', None, 'folder of frames')
flags.DEFINE_string('mask', None, "frame 0's annotation (any object counts)")
flags.DEFINE_string('out', None, 'PNG to write')
flags.DEFINE_integer('slic_segments', 300, 'superpixels of the page')
flags.mark_flags_as_required(['frames', 'mask', 'out'])


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  workdir = Path(tempfile.mkdtemp())
  session = annotate.Session(
    annotate.Frames(frame_io.VideoSource(FLAGS.frames)), workdir / 'first.png', FLAGS.slic_segments
  )
  server = annotate.serve(session)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  labels = session.labels(0)
  inside = mask_io.read_mask(FLAGS.mask, binary_255=None) > 0
  height, width = labels.shape
  options = webdriver.ChromeOptions()
  options.binary_location = shutil.which('chromium')
  for argument in ('--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars'):
    options.add_argument(argument)
  options.add_argument(f'--window-size={width + 40},{height + 110}')
  driver = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=options)
  try:
    driver.get(f'http://127.0.0.1:{server.server_address[1]}/')
    body = driver.find_element(By.TAG_NAME, 'body')
    WebDriverWait(driver, 60).until(lambda d: body.get_attribute('data-frame') == '0')
    canvas = driver.find_element(By.ID, 'canvas')
    for label in range(1, int(labels.max()) + 1):
      where = labels == label
      if inside[where].mean() < 0.5:
        continue
      # The superpixel's pixel nearest its centroid.
      ys, xs = np.nonzero(where)
      k = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
      offset = (int(xs[k] + 0.5 - width / 2), int(ys[k] + 0.5 - height / 2))
      ActionChains(driver).move_to_element_with_offset(canvas, *offset).click().perform()
    driver.save_screenshot(FLAGS.out)
  finally:
    driver.quit()
    server.shutdown()
    shutil.rmtree(workdir)


if __name__ == '__main__':
  app.run(main)
