"""A real OpenAI-compatible LLM server for the chat tests: `transformers serve` (in the engines venv) on a
tiny Llama with random weights and a word-level tokenizer built here, offline. Its replies are random
English words (speakable gibberish); the protocol is the real one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "tiny-llm/chat"

_BUILD = r'''
import hashlib, json, os, sys
from pathlib import Path
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

hub = Path(sys.argv[1]) / "hub" / "models--tiny-llm--chat"
work = hub / "build"
words = """hello world the a is was are it this that we you they and but so then now here there today good great
small big happy quiet bright warm cold green blue red river mountain city garden window book story song music
light morning evening night friend teacher family people time day year way place home house road train water
wind rain snow sun moon star sky tree flower bird dog cat fish apple bread coffee tea table chair door room
school work play walk run talk sing read write think know see hear feel make take give find tell ask call help
open close""".split()
specials = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
vocab = {token: i for i, token in enumerate(specials + words + [".", ",", "?", "!"])}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                               pad_token="</s>")
fast.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
                      "{% if add_generation_prompt %}<|assistant|> {% endif %}")
torch.manual_seed(0)
config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                     bos_token_id=1, eos_token_id=2, pad_token_id=2)
model = LlamaForCausalLM(config)
with torch.no_grad():  # make the end token unlikely, so replies run to max_tokens
    model.lm_head.weight[2].fill_(0.0)
    model.lm_head.weight[:6] = 0.0
model.generation_config.max_new_tokens = 40
model.generation_config.do_sample = False
model.save_pretrained(work)
fast.save_pretrained(work)
digest = hashlib.sha1(b"tiny-llm").hexdigest()
snapshot = hub / "snapshots" / digest
(hub / "blobs").mkdir(parents=True, exist_ok=True)
snapshot.mkdir(parents=True, exist_ok=True)
for path in work.iterdir():
    data = path.read_bytes()
    blob = hub / "blobs" / hashlib.sha256(data).hexdigest()
    blob.write_bytes(data)
    link = snapshot / path.name
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(blob, snapshot))
(hub / "refs").mkdir(exist_ok=True)
(hub / "refs" / "main").write_text(digest)
print("built")
'''


def llm_python() -> Path | None:
    """The interpreter with `transformers serve` (the engines venv), or None when it is not installed."""
    configured = os.environ.get("TTS_STUDIO_LLM_PYTHON")
    path = Path(configured) if configured else ROOT / ".venv-engines" / "bin" / "python"
    return path if path.exists() else None


def build_model(home: Path) -> Path:
    """The tiny model in a Hugging Face cache at `home` (built once per folder)."""
    python = llm_python()
    assert python is not None
    if not (home / "hub" / "models--tiny-llm--chat" / "refs" / "main").exists():
        subprocess.run([str(python), "-c", _BUILD, str(home)], check=True, capture_output=True, timeout=300)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Upstream:
    """One `transformers serve` process on 127.0.0.1 (offline, CPU)."""

    def __init__(self, home: Path, log_path: Path) -> None:
        self.home, self.log_path = home, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> Upstream:
        python = llm_python()
        assert python is not None
        env = {**os.environ, "HF_HOME": str(self.home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
               "TQDM_DISABLE": "1"}  # fmt: skip
        serve = Path(python).parent / "transformers"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(serve), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
                 "--log-level", "warning", "--default-seed", "0"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    self._warm()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"transformers serve did not start; see {self.log_path}")

    def _warm(self) -> None:
        """Load the model once, so the tests' first request is not the slow one."""
        body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
        httpx.post(f"{self.url}/chat/completions", json=body, timeout=120).raise_for_status()

    def pause(self) -> None:
        """SIGSTOP: the server accepts connections (the kernel does) but answers nothing."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


if __name__ == "__main__":  # manual use: python tests/llm_upstream.py HOME -> serves until Ctrl-C
    home = build_model(Path(sys.argv[1]))
    upstream = Upstream(home, home / "serve.log").start()
    print(upstream.url, flush=True)
    try:
        signal.pause()
    finally:
        upstream.stop()
