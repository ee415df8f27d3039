"""A tiny multilingual Whisper checkpoint in faster-whisper's format (CTranslate2 `model.bin`, `config.json`,
`vocabulary.json` and a `tokenizer.json`), built here because weights cannot be downloaded: the real loader
(`faster_whisper.WhisperModel(path)`) reads it as it reads Systran/faster-whisper-small.

It has Whisper's multilingual layout: 51,865 tokens (50,257 text tokens, `<|endoftext|>`, `<|startoftranscript|>`,
the 99 language tokens, `<|translate|>`, `<|transcribe|>`, `<|startoflm|>`, `<|startofprev|>`, `<|nocaptions|>`,
`<|notimestamps|>` and 1,501 timestamps). CTranslate2 (4.8) calls a Whisper vocabulary multilingual when it holds
the empty token, as the real multilingual vocabularies do (the last text token here), and counts its languages
between `<|startoftranscript|>` and `<|nocaptions|>` (99). The encoder and the decoder layers are random (small);
the decoder's output depends only on its current input token, wired so the model is predictable whatever it
hears:
- language detection (`<|startoftranscript|>` -> a language) ranks French first, then German, Spanish, English;
- transcription (`<|transcribe|>` -> `<|0.00|>` -> SCRIPT... -> `<|1.00|>` -> `<|endoftext|>`) writes SCRIPT_TEXT,
  in the first second of each 30 s window, whatever the prompt or hotwords before it;
- word timings: the alignment heads' cross-attention looks at a frame per word (0-0.48, 0.48-0.72, 0.72-0.96 s).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from tts_studio.services.whisper_models import LANGUAGES

D_MODEL = 32  # small: the checkpoint is about 14 MB and builds in a few seconds
N_MELS = 80
TEXT_TOKENS = 50_257
SCRIPT = ("Ġbon", "jour", "Ġle", "Ġmonde")  # byte-level BPE pieces: " bonjour le monde"
SCRIPT_TEXT = "bonjour le monde"
DETECTION_ORDER = ("fr", "de", "es", "en")  # what language detection ranks first, second, ...
SPECIALS_BEFORE = ("<|endoftext|>", "<|startoftranscript|>")
SPECIALS_AFTER = (
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)


def vocabulary() -> list[str]:
    """Whisper's multilingual token layout: text tokens (the byte alphabet, the script's pieces, fillers),
    then the special tokens and the timestamps."""
    from tokenizers import pre_tokenizers

    tokens = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens += SCRIPT
    letters = "abcdefghijklmnopqrstuvwxyz"
    index = 0
    while len(tokens) < TEXT_TOKENS:  # filler pieces: "Ġaaaa", "Ġaaab", ...
        word, rest = "", index
        for _ in range(4):
            rest, digit = divmod(rest, len(letters))
            word = letters[digit] + word
        tokens.append(f"Ġ{word}")
        index += 1
    tokens += SPECIALS_BEFORE
    tokens += [f"<|{code}|>" for code in LANGUAGES]
    tokens += SPECIALS_AFTER
    tokens += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    assert len(tokens) == 51_865 and len(set(tokens)) == len(tokens)
    return tokens


def _tokenizer(tokens: list[str]) -> str:
    """`tokenizer.json`: byte-level BPE over the text tokens, the rest as special tokens (same ids)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(tokens[:TEXT_TOKENS])}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens[TEXT_TOKENS:]])
    for token in ("<|endoftext|>", "<|fr|>", "<|transcribe|>", "<|1.00|>"):
        assert tokenizer.token_to_id(token) == tokens.index(token)
    json_text: str = tokenizer.to_str()
    return json_text


def _weights(rng: np.random.Generator, *shape: int, scale: float = 0.02) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _layer_norm(spec: object, d: int) -> None:
    spec.gamma = np.ones(d, np.float32)  # type: ignore[attr-defined]
    spec.beta = np.zeros(d, np.float32)  # type: ignore[attr-defined]


def _linear(spec: object, rng: np.random.Generator, out: int, inp: int, scale: float) -> None:
    spec.weight = _weights(rng, out, inp, scale=scale)  # type: ignore[attr-defined]
    spec.bias = np.zeros(out, np.float32)  # type: ignore[attr-defined]


def _attention(spec: object, rng: np.random.Generator, d: int, cross: bool, scale: float) -> None:
    _layer_norm(spec.layer_norm, d)  # type: ignore[attr-defined]
    linears = spec.linear  # type: ignore[attr-defined]
    if cross:  # queries; fused keys and values; output
        _linear(linears[0], rng, d, d, scale)
        _linear(linears[1], rng, 2 * d, d, scale)
        _linear(linears[2], rng, d, d, scale)
    else:  # fused queries, keys and values; output
        _linear(linears[0], rng, 3 * d, d, scale)
        _linear(linears[1], rng, d, d, scale)


def _ffn(spec: object, rng: np.random.Generator, d: int, scale: float) -> None:
    _layer_norm(spec.layer_norm, d)  # type: ignore[attr-defined]
    _linear(spec.linear_0, rng, 4 * d, d, scale)  # type: ignore[attr-defined]
    _linear(spec.linear_1, rng, d, 4 * d, scale)  # type: ignore[attr-defined]


CHAIN = ("<|transcribe|>", "<|0.00|>", *SCRIPT, "<|1.00|>", "<|endoftext|>")  # each token -> the next
HALF = D_MODEL // 2
FRAMES_PER_TURN = 200  # encoder frames (50 a second) per turn of the position code
# The frame each input token's cross-attention looks at (it predicts the next word): word timings.
WORD_FRAMES = {"<|notimestamps|>": 5, SCRIPT[0]: 17, SCRIPT[1]: 29, SCRIPT[2]: 41, SCRIPT[3]: 53}


def _states() -> list[str]:
    """The tokens whose embedding is an axis pair (the others embed to zero): what the decoder reacts to."""
    return ["<|startoftranscript|>", "<|notimestamps|>", *CHAIN[:-1]]


def _angle(frame: float) -> float:
    return float(2 * np.pi * frame / FRAMES_PER_TURN)


def _decoder_output(tokens: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings, projection and its bias. State k embeds to e_k - e_(k+HALF) (zero mean, so the layer norm
    keeps it), and the projection maps that code to the token that follows the state; a zero embedding
    (any other token) leaves only the bias, which favours `<|endoftext|>`."""
    ids = {token: i for i, token in enumerate(tokens)}
    follows = dict(itertools.pairwise(CHAIN))
    embeddings = np.zeros((len(tokens), D_MODEL), np.float32)
    projection = np.zeros((len(tokens), D_MODEL), np.float32)
    for axis, state in enumerate(_states()):
        embeddings[ids[state], axis], embeddings[ids[state], axis + HALF] = 1.0, -1.0
        if state == "<|startoftranscript|>":  # language detection: graded, first in DETECTION_ORDER highest
            for rank, code in enumerate(DETECTION_ORDER):
                projection[ids[f"<|{code}|>"], axis] = 5.0 - 0.5 * rank
        elif state in follows:
            projection[ids[follows[state]], axis] = 5.0
    bias = np.zeros(len(tokens), np.float32)
    bias[ids["<|endoftext|>"]] = 1.0
    return embeddings, projection, bias


def _cross_attention(spec: object, rng: np.random.Generator) -> None:
    """Word timings (faster-whisper aligns words on the cross-attention of `alignment_heads`): the encoder
    output carries its frame as an angle on axes 0 and 1, and each state's query points at the frame of the
    word it predicts, in both heads; values are near zero, so what the decoder writes does not change."""
    _attention(spec, rng, D_MODEL, cross=True, scale=1e-4)
    query = spec.linear[0].weight  # type: ignore[attr-defined]
    kv = spec.linear[1].weight  # type: ignore[attr-defined]
    for head in (0, HALF):
        kv[head, 0], kv[head + 1, 1] = 1.0, 1.0  # keys: the frame's angle
        for axis, state in enumerate(_states()):
            if state in WORD_FRAMES:
                angle = _angle(WORD_FRAMES[state])
                query[head, axis], query[head + 1, axis] = 90 * np.cos(angle), 90 * np.sin(angle)


def build_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Write the checkpoint into `folder` (created) and return it."""
    from ctranslate2.specs import whisper_spec  # type: ignore[import-untyped]  # no type hints

    rng = np.random.default_rng(seed)
    d = D_MODEL
    tokens = vocabulary()
    spec = whisper_spec.WhisperSpec(1, 2, 1, 2)
    encoder, decoder = spec.encoder, spec.decoder
    # The encoder hears the audio (random weights) faintly under a position code: its frame as an angle.
    encoder.conv1.weight = _weights(rng, d, N_MELS, 3, scale=1e-3)
    encoder.conv1.bias = np.zeros(d, np.float32)
    encoder.conv2.weight = _weights(rng, d, d, 3, scale=1e-3)
    encoder.conv2.bias = np.zeros(d, np.float32)
    positions = np.zeros((1500, d), np.float32)
    angles = 2 * np.pi * np.arange(1500) / FRAMES_PER_TURN
    positions[:, 0], positions[:, 1] = np.cos(angles), np.sin(angles)
    encoder.position_encodings.encodings = positions
    _layer_norm(encoder.layer_norm, d)
    for layer in encoder.layer:
        _attention(layer.self_attention, rng, d, cross=False, scale=1e-3)
        _ffn(layer.ffn, rng, d, scale=1e-3)
    embeddings, projection, bias = _decoder_output(tokens)
    decoder.embeddings.weight = embeddings
    decoder.position_encodings.encodings = np.zeros((448, d), np.float32)
    _layer_norm(decoder.layer_norm, d)
    for layer in decoder.layer:  # near-silent layers: the output follows the current token
        _attention(layer.self_attention, rng, d, cross=False, scale=1e-4)
        _cross_attention(layer.attention, rng)
        _ffn(layer.ffn, rng, d, scale=1e-4)
    decoder.projection.weight = projection
    decoder.projection.bias = bias
    spec.register_vocabulary([*tokens[: TEXT_TOKENS - 1], "", *tokens[TEXT_TOKENS:]])  # "": multilingual
    config = spec.config
    config.suppress_ids = []
    config.suppress_ids_begin = [tokens.index("<|endoftext|>")]
    config.lang_ids = [tokens.index(f"<|{code}|>") for code in LANGUAGES]
    config.alignment_heads = [[0, 0], [0, 1]]
    spec.validate()
    spec.optimize()
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(str(folder))
    (folder / "tokenizer.json").write_text(_tokenizer(tokens), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"feature_size": N_MELS, "sampling_rate": 16000, "hop_length": 160, "chunk_length": 30}),
        encoding="utf-8",
    )
    return folder
