"""duet-recipe: the project's own recipe for its small default speech models (issue 3, item 4).

`speech` (espeak-ng corpus with noise and G.711 augmentation), `tokenizer`
(log-mel + k-means -> duet.units/1 ONNX), `default-tokenizer` (both, with the defaults),
`vocoder` (small unit HiFi-GAN trained on CPU -> duet.vocoder/1 via duet-export), `default-vocoder`;
and the dialogue model (issue 7): `dialogue-text`, `dialogue-data` (synthetic duplex dialogue, stages
1-3), `dialogue-train`, `dialogue-export`, `dialogue-measure`, `eval-set`, `default-dialogue`.
"""

__version__ = "0.1.0"
RECIPE = f"duet-recipe {__version__}"
