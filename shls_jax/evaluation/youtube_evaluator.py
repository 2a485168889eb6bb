"""YouTube-VOS (2018, 2019) semi-supervised evaluation: segment a split and zip it for the server.

`YouTubeEvaluator(config, results_dir).run(variables)` segments every selected video of
`<eval.youtube_root>/<eval.split>` (`youtube_vos` gives the layout) and writes
`<results_dir>/Annotations/<video>/<frame>.png` for exactly the frames meta.json lists: indexed
PNGs in the palette of the video's annotations, object ids as given, at the annotation size.
`submission_zip()` zips them as `Annotations/<video>/<frame>.png`, the tree the server reads.
Nothing is scored here: the split's annotations beyond each object's first frame are the
server's.

Objects that first appear after the video's first frame join the propagation at their first
annotated frame (`Propagator.run`'s `later_masks`, an extension of the reference, which tracks
frame-0 objects only); each object's given annotation is the output of its own first frame, at
full detail. With `eval.all_frames` the frames come from `<youtube_root>/<split>_all_frames/
JPEGImages/<video>/` (every frame of the 30 fps video, same names): all are segmented, the
listed ones written. Frames are streamed: a video is never held whole in memory.

Results folder rule, resuming and the sharding of videos over `jax.distributed` processes are
`evaluator`'s.
"""

from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from shls_jax.data import youtube_vos
from shls_jax.evaluation import evaluator
from shls_jax.inference import engine
from shls_jax.io import masks as mask_io
from shls_jax.io import results as results_io

ANNOTATIONS_DIR = 'Annotations'


class YouTubeEvaluator:
  """Segments the videos of a YouTube-VOS split; `run(variables)` writes their masks.

  Attributes:
    config: the whole config; reads `eval` (youtube_root, split, videos, all_frames, size,
      superpixels) and `inference`.
    results_dir: output folder (`Annotations/`, `evaluation.json`, the zip).
    videos: the selected `youtube_vos.Video`s.
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    results_dir,
    *,
    weights: str = '',
    videos: list[str] | None = None,
    overwrite: bool = False,
    overlays: bool = False,
    progress: bool = True,
  ):
    """As `evaluator.Evaluator`; `videos` replaces `eval.videos` (comma-separated names)."""
    self.config = config
    self.eval_config = eval_config = config.eval
    self.results_dir = Path(results_dir)
    self.size = evaluator.working_size(eval_config)
    self.overwrite, self.overlays, self.progress = overwrite, overlays, progress
    self.settings = evaluator.run_settings(config, weights)
    folder = youtube_vos.split_folder(eval_config.youtube_root, eval_config.split)
    frames_dir = None
    if eval_config.all_frames:
      frames_dir = folder.parent / f'{eval_config.split}_all_frames' / 'JPEGImages'
      if not frames_dir.is_dir():
        raise FileNotFoundError(
          f'eval.all_frames needs the all-frames release at {frames_dir} (<video>/<frame>.jpg)'
        )
    meta = youtube_vos.load_meta(folder)
    if not videos and eval_config.videos:
      videos = [v.strip() for v in eval_config.videos.split(',') if v.strip()]
    self.videos = [
      youtube_vos.load_video(folder, name, meta[name], frames_dir)
      for name in youtube_vos.select_videos(folder, meta, videos)
    ]

  @property
  def annotations_dir(self) -> Path:
    return self.results_dir / ANNOTATIONS_DIR

  def check_results_dir(self) -> None:
    evaluator.check_results_dir(self.results_dir, self.settings, self.overwrite)

  def predict_video(self, propagator: engine.Propagator, video: youtube_vos.Video):
    """[len(video.output_frames), H, W] uint8 result ids of one video at the annotation size."""
    full = youtube_vos.given_masks(video)
    size = self.size or next(iter(full.values())).shape
    given = {t: mask_io.resize_ids(m, size) for t, m in full.items()}
    # The video starts where its first object does (`youtube_vos.load_video`).
    first = given.pop(0)
    wanted = set(video.output_frames)
    names = video.frame_names

    inputs = evaluator.streamed_frames(
      video.name,
      video.frames,
      names,
      self.size,
      self.eval_config.superpixels,
      self.config.inference.mode,
    )
    masks = []
    results = propagator.stream(inputs, first, later_masks=given, progress=self.progress)
    for t, (name, result) in enumerate(zip(names, results)):
      if name not in wanted:
        continue
      mask = mask_io.resize_ids(result.mask, full[min(full)].shape)
      if t in full:
        mask = np.where(full[t] > 0, full[t], mask)
      masks.append(mask)
    return np.stack(masks).astype(np.uint8)

  def predict(self, variables) -> list[str]:
    """Writes the masks of this process's share of the videos not complete yet; returns their
    names."""
    self.check_results_dir()
    evaluator.sync('shls_youtube_checked')
    evaluator.record_settings(self.results_dir, self.settings)
    propagator = evaluator.propagator_for(variables, self.config)
    mine = self.videos[jax.process_index() :: jax.process_count()]
    todo = [
      v
      for v in mine
      if self.overwrite
      or not results_io.is_complete(self.annotations_dir / v.name, list(v.output_frames))
    ]
    for video in tqdm(todo, desc='videos', unit='video', disable=not self.progress):
      masks = self.predict_video(propagator, video)
      names = list(video.output_frames)
      results_io.write_masks_atomically(
        self.annotations_dir, video.name, masks, names, youtube_vos.video_palette(video)
      )
      if self.overlays:
        paths = {p.stem: p for p in video.frames}
        mask_io.write_overlays(
          self.results_dir / evaluator.OVERLAY_DIR / video.name, [paths[n] for n in names], masks
        )
    evaluator.sync('shls_youtube_predicted')
    return [v.name for v in todo]

  def run(self, variables) -> list[str]:
    """`predict`: nothing is scored locally; returns the videos computed by this process."""
    return self.predict(variables)

  def submission_zip(self) -> Path:
    """Writes `<results_dir>/submission-<split>.zip` (`Annotations/<video>/<frame>.png`)."""
    path = self.results_dir / f'submission-{self.eval_config.split}.zip'
    if jax.process_index() == 0:
      results_io.write_submission_zip(
        self.annotations_dir, [v.name for v in self.videos], path, prefix=f'{ANNOTATIONS_DIR}/'
      )
    return path


def evaluate(
  config: ml_collections.ConfigDict,
  results_dir,
  *,
  checkpoint: str | None = None,
  videos: list[str] | None = None,
  overwrite: bool = False,
  overlays: bool = False,
  submission: bool = False,
) -> list[str]:
  """The `evaluate.py` command for YouTube-VOS: segments, then zips with `submission`; returns
  the videos computed."""
  # Dataset, selection and results folder are checked before the slow loading of the weights.
  youtube = YouTubeEvaluator(
    config,
    results_dir,
    weights=evaluator.describe_weights(checkpoint),
    videos=videos,
    overwrite=overwrite,
    overlays=overlays,
  )
  youtube.check_results_dir()
  computed = youtube.run(evaluator.load_weights(checkpoint))
  if submission:
    print(f'submission: {youtube.submission_zip()}', flush=True)
  return computed
