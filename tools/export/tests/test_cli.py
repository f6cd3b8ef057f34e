"""The real command line (shell wrapper + python -m duet_export), end to end."""

import json

from conftest import run_cli


def test_tiny_then_llama_verify(tmp_path):
    proc = run_cli("tiny", "--out", tmp_path / "hf", "--layers", 2, "--hidden", 64, "--heads", 4, "--kv-heads", 2,
                   "--head-dim", 16, "--intermediate", 96, "--vocab", 66, "--max-context", 256, "--tied",
                   "--rope-scaling", "llama3", "--seed", 2)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tokens"] == {"unitBase": 0, "unitCount": 64, "s0": 64, "s1": 65}
    proc = run_cli("llama", "--checkpoint", tmp_path / "hf", "--out", tmp_path / "onnx", "--verify")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["verify"]["logits"] < 1e-4
    assert "layers" in proc.stderr and "verify: max abs diff" in proc.stderr  # progress + verdict on stderr
    m = json.loads((tmp_path / "onnx/manifest.json").read_text())
    assert m["rope"]["type"] == "llama3" and m["architecture"]["tiedEmbeddings"] is True

    # dynamic rope: refused with a clear one-line error and exit code 2
    proc = run_cli("tiny", "--out", tmp_path / "dyn", "--rope-scaling", "dynamic")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("llama", "--checkpoint", tmp_path / "dyn", "--out", tmp_path / "dyn-onnx")
    assert proc.returncode == 2
    assert "RopeError" in proc.stderr and "dynamic" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_hf_prints_json(tmp_path):
    proc = run_cli("tiny", "--out", tmp_path / "hf", "--layers", 1, "--hidden", 32, "--heads", 2, "--intermediate", 48,
                   "--vocab", 40)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("bench-hf", "--checkpoint", tmp_path / "hf", "--context", 64, "--prefill", 4, "--decode", 3,
                   "--ticks", 5, "--threads", 1, "--max-calls", 3, "--budget-ms", 10000)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["calls"] == 3
    assert [row["calls"] for row in result["table"]] == [1, 2, 3]
    assert all(0 < row["p50"] <= row["p99"] for row in result["table"])
    assert result["p99_step_ms"] == result["table"][-1]["p99"]
    assert result["per_call_ms"] == result["table"][0]["p50"]
    assert "calls=1" in proc.stderr


def test_bench_hf_stops_at_budget(tmp_path):
    """In process: with a budget nothing meets, it stops after N=1 and reports 0 calls."""
    from duet_export.bench_hf import bench_hf
    from duet_export.tiny import default_tokens, tiny_config, write_tiny

    ckpt = write_tiny(tmp_path / "hf", tiny_config(layers=1, hidden=32, heads=2, intermediate=48, vocab=40), 0,
                      default_tokens(40))
    result = bench_hf(str(ckpt), context=32, prefill=4, decode=2, ticks=3, max_calls=4, budget_ms=0.0, log=lambda m: None)
    assert result["calls"] == 0 and len(result["table"]) == 1
    assert result["p99_step_ms"] == result["table"][0]["p99"]
