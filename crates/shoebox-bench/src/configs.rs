//! The real configurations (config.json, preprocessor_config.json) and tokenizers of the
//! architectures the bench builds with random weights.

/// The real OpenAI CLIP BPE tokenizer (the clip-dev fixture ships it unchanged).
pub(crate) const CLIP_TOKENIZER: &[u8] =
    include_bytes!("../../../tests/fixtures/models/clip-dev/tokenizer.json");
/// bert-base-uncased plus BLIP's [DEC] (the vocabulary of BLIP and of all-MiniLM-L6-v2).
pub(crate) const BERT_TOKENIZER: &[u8] =
    include_bytes!("../../../tests/fixtures/models/blip-dev/tokenizer.json");
/// A byte-level BPE of 1024 tokens (GPT-2's is 50257): ids beyond it decode to nothing, which only
/// matters for the caption text, never for the timing.
pub(crate) const GPT2_TOKENIZER: &[u8] =
    include_bytes!("../../../tests/fixtures/models/vitgpt2-dev/tokenizer.json");

/// openai/clip-vit-base-patch32 config.json (the fields that define the architecture).
pub const CLIP_B32_CONFIG: &str = r#"{
  "_name_or_path": "openai/clip-vit-base-patch32",
  "architectures": ["CLIPModel"],
  "initializer_factor": 1.0,
  "logit_scale_init_value": 2.6592,
  "model_type": "clip",
  "projection_dim": 512,
  "text_config": {
    "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
    "hidden_act": "quick_gelu", "hidden_size": 512, "initializer_range": 0.02,
    "intermediate_size": 2048, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 8, "num_hidden_layers": 12,
    "projection_dim": 512, "vocab_size": 49408
  },
  "vision_config": {
    "attention_dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": 768, "image_size": 224,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model", "num_attention_heads": 12, "num_channels": 3,
    "num_hidden_layers": 12, "patch_size": 32, "projection_dim": 512
  }
}"#;

/// openai/clip-vit-base-patch32 preprocessor_config.json.
pub const CLIP_B32_PREPROCESSOR: &str = r#"{
  "crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
  "feature_extractor_type": "CLIPFeatureExtractor",
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "resample": 3, "size": 224
}"#;

/// Salesforce/blip-image-captioning-base config.json (architecture fields).
pub const BLIP_BASE_CONFIG: &str = r#"{
  "architectures": ["BlipForConditionalGeneration"],
  "image_text_hidden_size": 256, "initializer_factor": 1.0, "initializer_range": 0.02,
  "logit_scale_init_value": 2.6592, "model_type": "blip", "projection_dim": 512,
  "text_config": {
    "attention_probs_dropout_prob": 0.0, "bos_token_id": 30522, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
    "model_type": "blip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12,
    "pad_token_id": 0, "projection_dim": 768, "sep_token_id": 102, "use_cache": true,
    "vocab_size": 30524
  },
  "vision_config": {
    "attention_dropout": 0.0, "hidden_act": "gelu", "hidden_size": 768, "image_size": 384,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "model_type": "blip_vision_model", "num_attention_heads": 12, "num_hidden_layers": 12,
    "patch_size": 16, "projection_dim": 512
  }
}"#;

/// Salesforce/blip-image-captioning-base preprocessor_config.json.
pub const BLIP_BASE_PREPROCESSOR: &str = r#"{
  "do_normalize": true, "do_rescale": true, "do_resize": true,
  "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_processor_type": "BlipImageProcessor",
  "image_std": [0.26862954, 0.26130258, 0.27577711],
  "processor_class": "BlipProcessor", "resample": 3,
  "rescale_factor": 0.00392156862745098, "size": {"height": 384, "width": 384}
}"#;

/// nlpconnect/vit-gpt2-image-captioning config.json (architecture fields).
pub const VITGPT2_CONFIG: &str = r#"{
  "architectures": ["VisionEncoderDecoderModel"],
  "decoder": {
    "activation_function": "gelu_new", "add_cross_attention": true,
    "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1, "bos_token_id": 50256,
    "decoder_start_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
    "initializer_range": 0.02, "is_decoder": true, "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_inner": null,
    "n_layer": 12, "n_positions": 1024, "pad_token_id": 50256, "resid_pdrop": 0.1,
    "scale_attn_by_inverse_layer_idx": false, "scale_attn_weights": true,
    "use_cache": true, "vocab_size": 50257
  },
  "decoder_start_token_id": 50256,
  "encoder": {
    "architectures": ["ViTModel"], "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0, "hidden_size": 768, "image_size": 224,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
    "model_type": "vit", "num_attention_heads": 12, "num_channels": 3,
    "num_hidden_layers": 12, "patch_size": 16, "qkv_bias": true
  },
  "eos_token_id": 50256,
  "is_encoder_decoder": true,
  "model_type": "vision-encoder-decoder",
  "pad_token_id": 50256,
  "tie_word_embeddings": false
}"#;

/// nlpconnect/vit-gpt2-image-captioning preprocessor_config.json, with the size written as the
/// (height, width) dict that transformers expands the published `"size": 224` into.
pub const VITGPT2_PREPROCESSOR: &str = r#"{
  "do_normalize": true, "do_resize": true, "feature_extractor_type": "ViTFeatureExtractor",
  "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2,
  "size": {"height": 224, "width": 224}
}"#;

/// sentence-transformers/all-MiniLM-L6-v2 config.json.
pub const MINILM_L6_CONFIG: &str = r#"{
  "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
  "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
  "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
  "position_embedding_type": "absolute", "transformers_version": "4.8.2", "type_vocab_size": 2,
  "use_cache": true, "vocab_size": 30522
}"#;
