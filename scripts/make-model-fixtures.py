#!/usr/bin/env python3
"""Make the image–text model fixtures of the newer families and their transformers reference outputs.

No model hub is reachable from the build machines, so these are tiny but real Hugging Face folders,
written by transformers / sentence-transformers themselves:

- openclip-dev: clip-dev's trained weights in a CLIPModel whose config says hidden_act "gelu" (as the
  LAION / DataComp OpenCLIP checkpoints in HF format do) and the legacy eos_token_id 2 (pooling at
  the largest id, as those configs do). The trained weights keep it meaningful for shapes, and the
  activation changes every number: a loader that computed quick_gelu fails the per-component check.
- siglip-dev: a SiglipModel (SigLIP 1 layout: SentencePiece Unigram tokenizer trained here, text
  padded to max_position_embeddings, attention-pooling head, logit bias), random weights with
  non-trivial biases and layer norms.
- siglip2-dev: a SiglipModel with a Gemma-style byte-fallback BPE tokenizer (the fixed-resolution
  SigLIP 2 checkpoints' layout, Siglip2Tokenizer: lower-cased), random weights with non-trivial
  biases and layer norms.
- mclip-dev: a sentence-transformers query encoder (DistilBERT, mean pooling, Dense to 64 dims)
  distilled onto clip-dev's text tower from English, French, German and Spanish prompts, as
  sentence-transformers/clip-ViT-B-32-multilingual-v1 was made for OpenAI's ViT-B/32.

Reference outputs (tests/fixtures/reference/<name>.json, <name>.pixel_values.safetensors): token ids
and normalized text embeddings; for image models the processor's pixel tensors and normalized image
embeddings, logit scale and bias.

Usage: python3 scripts/make-model-fixtures.py   (needs torch, transformers, sentence-transformers,
sentencepiece, pillow; about a minute on two cores)
"""

import json
import os
import random
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import transformers
from transformers import (
    CLIPImageProcessor,
    CLIPModel,
    CLIPTokenizerFast,
    DistilBertConfig,
    DistilBertModel,
    PreTrainedTokenizerFast,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
    SiglipTokenizer,
)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
MODELS = os.path.join(ROOT, "models")
REF = os.path.join(ROOT, "reference")
DATA = os.path.join(ROOT, "data")

torch.set_num_threads(2)
torch.manual_seed(7)
random.seed(7)
np.random.seed(7)

COLORS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "triangle"]
TRANSLATIONS = {
    "fr": ({"red": "rouge", "green": "vert", "blue": "bleu", "yellow": "jaune"},
           {"circle": "cercle", "square": "carré", "triangle": "triangle"},
           ["une photo d'un {shape} {color}", "un {shape} {color}"]),
    "de": ({"red": "rotes", "green": "grünes", "blue": "blaues", "yellow": "gelbes"},
           {"circle": "Kreis", "square": "Quadrat", "triangle": "Dreieck"},
           ["ein Foto von einem {color} {shape}", "ein {color} {shape}"]),
    "es": ({"red": "rojo", "green": "verde", "blue": "azul", "yellow": "amarillo"},
           {"circle": "círculo", "square": "cuadrado", "triangle": "triángulo"},
           ["una foto de un {shape} {color}", "un {shape} {color}"]),
}

TEXTS = [
    "a photo of a red circle",
    "A PHOTO OF A BLUE SQUARE!",
    "a yellow triangle, on a plain background.",
    "grüner Kreis — café",
    "",
    "green " * 40,
]


def features(out):
    """transformers 5 returns model outputs from get_*_features; 4.x returned the tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def normalized(t):
    return torch.nn.functional.normalize(t, dim=-1)


def shake(model, scale=0.1):
    """Give biases and layer norms non-trivial values (random-init models have zeros and ones)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * scale)


def test_images():
    """PNG images from the dev set (lossless, so our decode and PIL's agree) and a few JPEGs."""
    labels = [json.loads(line) for line in open(os.path.join(DATA, "dev", "labels.jsonl"))]
    pngs = [l for l in labels if l["file"].endswith(".png")][:8]
    jpgs = [l for l in labels if l["file"].endswith(".jpg")][:2]
    return pngs + jpgs


def image_reference(name, model, processor, ref):
    px_all = {}
    ref["images"] = []
    for i, l in enumerate(test_images()):
        img = Image.open(os.path.join(DATA, "dev", l["file"])).convert("RGB")
        px = processor(images=img, return_tensors="pt")["pixel_values"]
        key = f"image_{i:02d}"
        px_all[key] = px[0].contiguous()
        with torch.no_grad():
            emb = normalized(features(model.get_image_features(pixel_values=px)))[0]
        ref["images"].append({"file": "dev/" + l["file"], "pixel_values_key": key,
                              "color": l["color"], "shape": l["shape"],
                              "embedding": emb.tolist()})
    save_file(px_all, os.path.join(REF, f"{name}.pixel_values.safetensors"))


def text_reference(model, encode, ref, texts=TEXTS):
    ref["texts"] = []
    for t in texts:
        ids = encode(t)
        with torch.no_grad():
            emb = normalized(features(model.get_text_features(input_ids=torch.tensor([ids]))))[0]
        ref["texts"].append({"text": t, "input_ids": ids, "embedding": emb.tolist()})


def write_ref(name, ref):
    ref["transformers"] = transformers.__version__
    with open(os.path.join(REF, f"{name}.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)


# ---------------------------------------------------------------- openclip-dev


def make_openclip():
    src = os.path.join(MODELS, "clip-dev")
    dst = os.path.join(MODELS, "openclip-dev")
    shutil.rmtree(dst, ignore_errors=True)
    base = CLIPModel.from_pretrained(src)
    cfg = base.config
    cfg.text_config.hidden_act = "gelu"
    cfg.vision_config.hidden_act = "gelu"
    cfg.text_config.eos_token_id = 2  # the legacy value LAION's HF configs carry: argmax pooling
    model = CLIPModel(cfg)
    model.load_state_dict(base.state_dict())
    model.eval()
    model.save_pretrained(dst)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    shutil.copy(os.path.join(src, "preprocessor_config.json"), dst)
    # The same tensors and tokenizer as clip-dev: links, not a second 19 MB copy in the repository.
    for f in ["model.safetensors", "tokenizer.json", "vocab.json", "merges.txt"]:
        path = os.path.join(dst, f)
        if os.path.exists(path):
            os.remove(path)
        os.symlink(os.path.join("..", "clip-dev", f), path)
    tok = CLIPTokenizerFast.from_pretrained(src)
    processor = CLIPImageProcessor.from_pretrained(src)
    ref = {"logit_scale_exp": float(model.logit_scale.exp().detach())}
    text_reference(model, lambda t: tok(t, truncation=True, max_length=77)["input_ids"], ref)
    image_reference("openclip-dev", model, processor, ref)
    # How far GELU moves the embeddings from clip-dev's quick_gelu (the test's discrimination).
    with torch.no_grad():
        ids = torch.tensor([tok(TEXTS[0])["input_ids"]])
        a = normalized(features(model.get_text_features(input_ids=ids)))[0]
        b = normalized(features(base.get_text_features(input_ids=ids)))[0]
    ref["max_component_diff_vs_quick_gelu"] = float((a - b).abs().max())
    write_ref("openclip-dev", ref)
    print("openclip-dev: max |gelu − quick_gelu| per component", ref["max_component_diff_vs_quick_gelu"])


# ---------------------------------------------------------------- SigLIP


def corpus():
    lines = []
    for c in COLORS:
        for s in SHAPES:
            lines += [f"a photo of a {c} {s}", f"a {c} {s}", f"{c} {s} on a plain background"]
    for lang, (cs, ss, templates) in TRANSLATIONS.items():
        for c in COLORS:
            for s in SHAPES:
                for t in templates:
                    lines.append(t.format(color=cs[c], shape=ss[s]))
    lines += ["the quick brown fox jumps over the lazy dog", "café crème", "kids on a beach at sunset"]
    return lines


def siglip_config(vocab, pad, eos, bos=None, projection=96):
    text = dict(vocab_size=vocab, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=16, pad_token_id=pad,
                eos_token_id=eos, projection_size=projection)
    if bos is not None:
        text["bos_token_id"] = bos
    vision = dict(image_size=64, patch_size=16, hidden_size=96, intermediate_size=384,
                  num_hidden_layers=2, num_attention_heads=4)
    return SiglipConfig(text_config=text, vision_config=vision)


def siglip_processor():
    return SiglipImageProcessor(size={"height": 64, "width": 64}, resample=3,
                                image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def make_siglip():
    dst = os.path.join(MODELS, "siglip-dev")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        text_file = os.path.join(tmp, "corpus.txt")
        with open(text_file, "w") as f:
            f.write("\n".join(l.lower() for l in corpus()) + "\n")
        spm.SentencePieceTrainer.train(
            input=text_file, model_prefix=os.path.join(tmp, "spiece"), vocab_size=120,
            model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            character_coverage=1.0, hard_vocab_limit=False)
        slow = SiglipTokenizer(vocab_file=os.path.join(tmp, "spiece.model"), model_max_length=16)
        slow.save_pretrained(dst)
    slow = SiglipTokenizer.from_pretrained(dst)
    # tokenizer.json: the same Unigram model as a fast tokenizer (what Shoebox reads); the
    # canonicalization SiglipTokenizer applies first (lower case, no punctuation) is named by
    # tokenizer_config.json's tokenizer_class.
    from tokenizers.processors import TemplateProcessing
    from transformers.convert_slow_tokenizer import SpmConverter

    fast = SpmConverter(slow).converted()
    eos = slow.convert_tokens_to_ids("</s>")
    fast.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    fast.save(os.path.join(dst, "tokenizer.json"))

    encode = lambda t: slow(t, padding="max_length", truncation=True, max_length=16)["input_ids"]
    cfg = siglip_config(len(slow), pad=slow.pad_token_id, eos=eos)
    model = SiglipModel(cfg)
    shake(model, 0.3)
    with torch.no_grad():
        model.logit_bias.fill_(-4.5)
    model.eval()
    model.save_pretrained(dst)
    siglip_processor().save_pretrained(dst)
    ref = {"logit_scale_exp": float(model.logit_scale.exp().detach()),
           "logit_bias": float(model.logit_bias.detach())}
    text_reference(model, encode, ref, TEXTS + ["Hello, World! It's 5 o'clock."])
    image_reference("siglip-dev", model, siglip_processor(), ref)
    write_ref("siglip-dev", ref)


def make_siglip2():
    dst = os.path.join(MODELS, "siglip2-dev")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.siglip2.tokenization_siglip2 import Siglip2Tokenizer

    # A Gemma-style byte-fallback BPE trained here, handed to transformers' own Siglip2Tokenizer.
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Trained on words (as SentencePiece trains Gemma's pieces); Siglip2Tokenizer then puts
    # Gemma's normalizer and pre-tokenizer around the vocabulary.
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials + byte_tokens,
                                  show_progress=False)
    bpe.train_from_iterator([l.lower() for l in corpus()], trainer)
    vocab = bpe.get_vocab()
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in json.loads(bpe.to_str())["model"]["merges"]]
    tok = Siglip2Tokenizer(vocab=vocab, merges=merges, model_max_length=16)
    tok.save_pretrained(dst)
    tok = transformers.AutoTokenizer.from_pretrained(dst)
    encode = lambda t: tok(t, padding="max_length", truncation=True, max_length=16)["input_ids"]
    cfg = siglip_config(len(vocab), pad=tok.pad_token_id, eos=tok.eos_token_id,
                        bos=tok.bos_token_id)
    model = SiglipModel(cfg)
    shake(model, 0.3)
    model.eval()
    model.save_pretrained(dst)
    siglip_processor().save_pretrained(dst)
    ref = {"logit_scale_exp": float(model.logit_scale.exp().detach()), "logit_bias": float(model.logit_bias.detach()),
           "tokenizer_class": type(tok).__name__}
    text_reference(model, encode, ref, TEXTS + ["Ça coûte 5 € — ok?"])
    image_reference("siglip2-dev", model, siglip_processor(), ref)
    write_ref("siglip2-dev", ref)
    print("siglip2-dev: written; tokenizer", type(tok).__name__)


# ---------------------------------------------------------------- mclip-dev


def make_mclip():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    dst = os.path.join(MODELS, "mclip-dev")
    shutil.rmtree(dst, ignore_errors=True)
    teacher = CLIPModel.from_pretrained(os.path.join(MODELS, "clip-dev")).eval()
    clip_tok = CLIPTokenizerFast.from_pretrained(os.path.join(MODELS, "clip-dev"))

    def teach(text):
        with torch.no_grad():
            ids = torch.tensor([clip_tok(text)["input_ids"]])
            return normalized(features(teacher.get_text_features(input_ids=ids)))[0]

    # Pairs (student text, teacher English text): English itself and translations.
    pairs = []
    for c in COLORS:
        for s in SHAPES:
            en = f"a photo of a {c} {s}"
            pairs += [(en, en), (f"a {c} {s}", en)]
            for lang, (cs, ss, templates) in TRANSLATIONS.items():
                for t in templates:
                    pairs.append((t.format(color=cs[c], shape=ss[s]), en))
    targets = {en: teach(en) for _, en in pairs}

    # A cased WordPiece vocabulary over the corpus (as distilbert-base-multilingual-cased).
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(corpus(), trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False))
    cls, sep = wp.token_to_id("[CLS]"), wp.token_to_id("[SEP]")
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    from tokenizers import decoders
    wp.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]",
                                   model_max_length=64)
    cfg = DistilBertConfig(vocab_size=wp.get_vocab_size(), dim=48, n_layers=2, n_heads=2,
                           hidden_dim=192, max_position_embeddings=64, pad_token_id=0)
    with tempfile.TemporaryDirectory() as tmp:
        DistilBertModel(cfg).save_pretrained(tmp)
        fast.save_pretrained(tmp)
        word = st_models.Transformer(tmp, max_seq_length=64)
    pool = st_models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
    dense = st_models.Dense(in_features=48, out_features=64, bias=False,
                            activation_function=torch.nn.Identity())
    st = SentenceTransformer(modules=[word, pool, dense], device="cpu")
    shake(st, 0.05)

    # Distil: the student's embedding of each text → the teacher's of its English original.
    opt = torch.optim.AdamW(st.parameters(), lr=3e-3)
    st.train()
    texts = [p for p, _ in pairs]
    tgt = torch.stack([targets[en] for _, en in pairs])
    for step in range(int(os.environ.get("MCLIP_STEPS", "600"))):
        idx = random.sample(range(len(texts)), 32)
        feats = st.tokenize([texts[i] for i in idx])
        out = st(feats)["sentence_embedding"]
        loss = torch.nn.functional.mse_loss(normalized(out), tgt[idx]) * 64
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"  step {step}: loss {loss.item():.4f}", flush=True)
    st.eval()
    st.save(dst)
    # Retrieval check: each translated prompt finds its own English prompt among the 12.
    ens = sorted(targets)
    t_mat = torch.stack([targets[e] for e in ens])
    right = 0
    with torch.no_grad():
        for p, en in pairs:
            e = normalized(torch.tensor(st.encode(p)))
            right += ens[int((t_mat @ e).argmax())] == en
    acc = right / len(pairs)
    print(f"mclip-dev: translated prompt → its English prompt {acc:.3f}")
    ref = {"texts": [], "accuracy": acc, "clip_model": "clip-dev"}
    for t in ["a photo of a red circle", "un cercle rouge", "ein blaues Quadrat", "una foto de un triángulo amarillo", "Grün", ""]:
        ids = st.tokenizer(t, truncation=True, max_length=64)["input_ids"]
        emb = normalized(torch.tensor(st.encode(t)))
        ref["texts"].append({"text": t, "input_ids": ids, "embedding": emb.tolist()})
    write_ref("mclip-dev", ref)


if __name__ == "__main__":
    which = sys.argv[1:] or ["openclip", "siglip", "siglip2", "mclip"]
    for w in which:
        {"openclip": make_openclip, "siglip": make_siglip, "siglip2": make_siglip2,
         "mclip": make_mclip}[w]()
