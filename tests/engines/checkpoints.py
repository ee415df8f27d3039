"""Random-weight checkpoints built with the engines' own classes, loaded back through their real loaders.

Hugging Face downloads are impossible here, so tests and benchmarks build checkpoints locally: VoxCPM2
and VoxCPM 1.5 from a config.json (tiny or full size), Chatterbox from its own module classes with a
tiny (or full) T3 whose weights are crafted to emit the stop token after K speech tokens, so output
length is deterministic (K / 25 s). Compute cost does not depend on weight values.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

TINY_T3_LAYERS = 14  # the multilingual alignment analyzer hooks layers 9, 12 and 13


def _char_tokenizer(out: Path, vocab_size: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaTokenizerFast

    chars = string.ascii_letters + string.digits + string.punctuation + "äöüéèàçñß"
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    assert len(vocab) < vocab_size
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = LlamaTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.save_pretrained(str(out))


def _lm(hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int) -> dict[str, Any]:
    half_head = hidden // heads // 2
    return {
        "bos_token_id": 1, "eos_token_id": 2, "hidden_size": hidden, "intermediate_size": ffn,
        "max_position_embeddings": 4096, "num_attention_heads": heads, "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads, "rms_norm_eps": 1e-5, "vocab_size": vocab, "use_mup": False,
        "scale_emb": 1.0, "dim_model_base": hidden, "scale_depth": 1.0, "rope_theta": 10000.0,
        "rope_scaling": {"type": "longrope", "long_factor": [1.0] * half_head, "short_factor": [1.0] * half_head,
                         "original_max_position_embeddings": 4096},
    }  # fmt: skip


def build_voxcpm(out: Path, architecture: str = "voxcpm2", size: str = "tiny") -> Path:
    """A VoxCPM checkpoint directory (config.json, tokenizer, model + audiovae safetensors)."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    if size == "tiny":
        lm = _lm(64, 2, 2, 1, 128, 256)
        enc = {"hidden_dim": 64, "ffn_dim": 128, "num_heads": 2, "num_layers": 1}
        dit = {"hidden_dim": 64, "ffn_dim": 128, "num_heads": 2, "num_layers": 1, "cfm_config": {}}
        vae = {"encoder_dim": 16, "decoder_dim": 128}
        extra = {"residual_lm_num_layers": 1, "scalar_quantization_latent_dim": 32}
    else:  # the published VoxCPM2 dimensions (about 2.4B parameters)
        lm = _lm(2048, 28, 16, 2, 6144, 73448)
        # head size 128 throughout, so one rope table fits the LM, the local encoder and the DiT
        enc = {"hidden_dim": 1024, "ffn_dim": 4096, "num_heads": 8, "num_layers": 12}
        dit = {"hidden_dim": 1024, "ffn_dim": 4096, "num_heads": 8, "num_layers": 12, "cfm_config": {}}
        vae = {}
        extra = {"residual_lm_num_layers": 8, "scalar_quantization_latent_dim": 512}
    cfg = {"architecture": architecture, "lm_config": lm, "encoder_config": enc, "dit_config": dit,
           "audio_vae_config": vae or None, "max_length": 1024 if size == "tiny" else 8192,
           "device": "cpu", "dtype": "float32", **extra}  # fmt: skip
    _char_tokenizer(out, lm["vocab_size"])
    if architecture == "voxcpm2":
        from voxcpm.model.voxcpm2 import VoxCPM2Model as Model
        from voxcpm.model.voxcpm2 import VoxCPMConfig
        from voxcpm.modules.audiovae import AudioVAEConfigV2 as VAEConfig
        from voxcpm.modules.audiovae import AudioVAEV2 as VAE
    else:
        from voxcpm.model.voxcpm import VoxCPMConfig
        from voxcpm.model.voxcpm import VoxCPMModel as Model
        from voxcpm.modules.audiovae import AudioVAE as VAE
        from voxcpm.modules.audiovae import AudioVAEConfig as VAEConfig
    from transformers import LlamaTokenizerFast

    tokenizer = LlamaTokenizerFast.from_pretrained(str(out))
    config = VoxCPMConfig.model_validate({k: v for k, v in cfg.items() if k != "architecture"})
    vae_model = VAE(config=VAEConfig(**vae)) if vae else VAE()
    torch.manual_seed(0)
    model = Model(config, tokenizer, vae_model, device="cpu")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file({k[len("audio_vae.") :]: v for k, v in state.items() if k.startswith("audio_vae.")},
              str(out / "audiovae.safetensors"))  # fmt: skip
    save_file({k: v for k, v in state.items() if not k.startswith("audio_vae.")}, str(out / "model.safetensors"))
    if not vae:
        cfg.pop("audio_vae_config")
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    return out


def tiny_t3_config(layers: int = 2) -> dict[str, Any]:
    """Llama_520M shrunk to `layers` layers (hidden size stays 1024: the Perceiver is fixed)."""
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    return {**LLAMA_CONFIGS["Llama_520M"], "num_hidden_layers": layers, "intermediate_size": 1024}


def _chatterbox_tokenizer(path: Path) -> None:
    """Char BPE with [STOP]=0, [START]=255, [SPACE], contiguous ids below 704 (EnTokenizer's contract)."""
    from tokenizers import Tokenizer, models

    chars = string.ascii_letters + string.digits + string.punctuation
    vocab: dict[str, int] = {"[STOP]": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    vocab.update({f"[F{i}]": i for i in range(len(vocab), 255)})
    for i, special in enumerate(["[START]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]"]):
        vocab[special] = 255 + i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.add_special_tokens(["[START]", "[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]"])
    tok.save(str(path))


def craft_stop_after(t3: Any, tokens: int) -> None:
    """Make T3 emit speech token 100 `tokens` times, then the stop token (deterministic length)."""
    import torch

    with torch.no_grad():
        for layer in t3.tfmr.layers:  # every block adds nothing: the residual stream is the input
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        t3.speech_emb.weight.zero_()
        pos = t3.speech_pos_emb.emb.weight
        pos.zero_()
        n = min(pos.shape[0], pos.shape[1])
        pos[range(n), range(n)] = 1.0  # speech position p -> one-hot e_p
        head = t3.speech_head.weight
        head.zero_()
        head[100, :tokens] = 10.0
        head[t3.hp.stop_speech_token, tokens] = 10.0


def build_chatterbox(out: Path, tokens: int = 25, layers: int | None = 2) -> Path:
    """An English Chatterbox checkpoint for `ChatterboxTTS.from_local` (None layers: full size T3)."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.voice_encoder import VoiceEncoder
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    original = LLAMA_CONFIGS["Llama_520M"]
    if layers is not None:
        LLAMA_CONFIGS["Llama_520M"] = tiny_t3_config(layers)
    try:
        torch.manual_seed(0)
        t3 = T3()
        craft_stop_after(t3, tokens)
        for name, module in (("ve", VoiceEncoder()), ("t3_cfg", t3), ("s3gen", S3Gen())):
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(out / f"{name}.safetensors"))
    finally:
        LLAMA_CONFIGS["Llama_520M"] = original
    _chatterbox_tokenizer(out / "tokenizer.json")
    return out


def _mtl_tokenizer(path: Path, languages: tuple[str, ...]) -> None:
    """A grapheme tokenizer like MTLTokenizer's: [START]/[STOP]/[SPACE], language tags `[xx]`, ids < 2454."""
    from tokenizers import Tokenizer, models

    chars = string.ascii_lowercase + string.digits + string.punctuation + "äöüéèàçñß"
    vocab: dict[str, int] = {"[STOP]": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    vocab.update({f"[F{i}]": i for i in range(len(vocab), 255)})
    specials = [
        "[START]",
        "[UNK]",
        "[SPACE]",
        "[PAD]",
        "[SEP]",
        "[CLS]",
        "[MASK]",
        *(f"[{lang}]" for lang in languages),
    ]
    for i, special in enumerate(specials):
        vocab[special] = 255 + i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.add_special_tokens(["[STOP]", *specials])
    tok.save(str(path))


def build_chatterbox_multilingual(out: Path, tokens: int = 25) -> Path:
    """A multilingual Chatterbox checkpoint for `ChatterboxMultilingualTTS.from_local` (14-layer T3)."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.mtl_tts import SUPPORTED_LANGUAGES
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    original = LLAMA_CONFIGS["Llama_520M"]
    LLAMA_CONFIGS["Llama_520M"] = tiny_t3_config(TINY_T3_LAYERS)
    try:
        torch.manual_seed(0)
        t3 = T3(T3Config.multilingual())
        craft_stop_after(t3, tokens)
        save_file({k: v.contiguous() for k, v in t3.state_dict().items()}, str(out / "t3_mtl23ls_v2.safetensors"))
        torch.save(VoiceEncoder().state_dict(), out / "ve.pt")
        torch.save(S3Gen().state_dict(), out / "s3gen.pt")
    finally:
        LLAMA_CONFIGS["Llama_520M"] = original
    _mtl_tokenizer(out / "grapheme_mtl_merged_expanded_v1.json", tuple(SUPPORTED_LANGUAGES))
    (out / "Cangjie5_TC.json").write_text(json.dumps(["你\tonf", "好\tvnd", "世\tpt", "界\twol"]), encoding="utf-8")
    return out


def tiny_gpt2_config(layers: int = 2) -> dict[str, Any]:
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    return {**LLAMA_CONFIGS["GPT2_medium"], "n_layer": layers}


def craft_turbo_counter(t3: Any, tokens: int) -> None:
    """Make Turbo's GPT-2 T3 a counter: start -> 1 -> 2 -> ... -> `tokens` -> stop (deterministic length).

    Attention and MLP outputs are zeroed and positions carry nothing, so the last hidden state is the
    current token's embedding; token t embeds as the unit vector e_t and the head maps e_t to t + 1.
    """
    import torch

    with torch.no_grad():
        for block in t3.tfmr.h:
            block.attn.c_proj.weight.zero_()
            block.attn.c_proj.bias.zero_()
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
        t3.tfmr.wpe.weight.zero_()
        emb = t3.speech_emb.weight
        emb.zero_()
        emb[t3.hp.start_speech_token, 0] = 1.0
        for t in range(1, tokens + 1):
            emb[t, t] = 1.0
        head = t3.speech_head.weight
        head.zero_()
        for t in range(tokens):
            head[t + 1, t] = 10.0
        head[t3.hp.stop_speech_token, tokens] = 10.0
        if t3.speech_head.bias is not None:
            t3.speech_head.bias.zero_()


def build_chatterbox_turbo(out: Path, tokens: int = 25) -> Path:
    """A Chatterbox Turbo checkpoint for `ChatterboxTurboTTS.from_local` (2-layer GPT-2 T3, meanflow S3Gen)."""
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.voice_encoder import VoiceEncoder
    from safetensors.torch import save_file
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    hp = T3Config(text_tokens_dict_size=50276)  # as ChatterboxTurboTTS.from_local sets it up
    hp.llama_config_name = "GPT2_medium"
    hp.speech_tokens_dict_size = 6563
    hp.input_pos_emb = None
    hp.speech_cond_prompt_len = 375
    hp.use_perceiver_resampler = False
    hp.emotion_adv = False
    original = LLAMA_CONFIGS["GPT2_medium"]
    LLAMA_CONFIGS["GPT2_medium"] = tiny_gpt2_config()
    try:
        torch.manual_seed(0)
        t3 = T3(hp)
        craft_turbo_counter(t3, tokens)
        save_file({k: v.contiguous() for k, v in t3.state_dict().items()}, str(out / "t3_turbo_v1.safetensors"))
        save_file({k: v.contiguous() for k, v in VoiceEncoder().state_dict().items()}, str(out / "ve.safetensors"))
        s3gen = S3Gen(meanflow=True)
        save_file({k: v.contiguous() for k, v in s3gen.state_dict().items()}, str(out / "s3gen_meanflow.safetensors"))
    finally:
        LLAMA_CONFIGS["GPT2_medium"] = original
    corpus = [string.ascii_letters + string.digits + string.punctuation + " the quick brown fox"] * 4
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    GPT2TokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                      unk_token="<|endoftext|>").save_pretrained(str(out))  # fmt: skip
    return out


def build_pocket(out: Path, size: str = "tiny", eos_threshold: float | None = None) -> Path:
    """A pocket-tts folder for engine_dirs["pocket"]: its English config with no weights (random, with voice
    cloning) and a local WordLevel tokenizer of exactly n_bins ids; "tiny" shrinks the FlowLM transformer."""
    import yaml
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tts_studio.engines.pocket_engine import import_packages

    import_packages()  # pocket_tts's import-time thread count change, contained
    from pocket_tts.utils.config import CONFIGS_DIR

    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((CONFIGS_DIR / "english.yaml").read_text(encoding="utf-8"))
    config["weights_path"] = config["weights_path_without_voice_cloning"] = None
    lookup = config["flow_lm"]["lookup_table"]
    words = ("hi", "there", "hello", "the", "a", "of", "and", "to", "in", "is", "it", "you", "that")
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}
    vocab.update({f"tok{i}": i for i in range(len(vocab), lookup["n_bins"])})
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    assert tokenizer.get_vocab_size() == lookup["n_bins"]
    tokenizer.save(str(out / "tokenizer.json"))
    lookup["tokenizer_path"] = str(out / "tokenizer.json")
    if size == "tiny":
        config["flow_lm"]["transformer"].update(d_model=128, num_heads=2, num_layers=1)
        config["flow_lm"]["lookup_table"]["dim"] = 128
        config["flow_lm"]["flow"].update(dim=64, depth=1)
    if eos_threshold is not None:  # random weights then never stop: pocket-tts speaks the length it allots
        config["default_eos_threshold"] = eos_threshold
    (out / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return out
