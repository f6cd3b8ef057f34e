"""duet-export: turns Hugging Face Llama-architecture checkpoints into the engine's
`duet.synclm/1` ONNX contract (docs/synclm-contract.md), plus the Hugging Face reference
and benchmark tools the TypeScript engine tests against."""

__version__ = "0.1.0"
EXPORTER = f"duet-export {__version__}"
