//! `shoebox`: the command-line interface over the Shoebox engine (shoebox-core).

mod bench;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use shoebox_core::captions::{self, CaptionProgress};
use shoebox_core::classify;
use shoebox_core::duplicates::DuplicateKind;
use shoebox_core::files::display_path;
use shoebox_core::library::{DuplicatesRequest, OcrMode, OcrOptions, Status};
use shoebox_core::models::caption::CaptionOptions;
use shoebox_core::models::hub::DownloadProgress;
use shoebox_core::models::{DeviceChoice, Precision};
use shoebox_core::options::{self, ModelOptions};
use shoebox_core::pipeline::{PipelineOptions, Progress};
use shoebox_core::scan::RawMode;
use shoebox_core::search::{SearchInput, SearchMode, SortBy};
use shoebox_core::watch::WatchEvent;
use shoebox_core::{Library, LibraryOptions};

/// Find your photos by describing them. Local-first: nothing leaves this machine.
#[derive(Parser, Debug)]
#[command(name = "shoebox", version, about)]
struct Cli {
    /// Library folder (catalog and index) [default: the platform data dir, e.g. ~/.local/share/shoebox]
    #[arg(long, global = true, env = "SHOEBOX_LIBRARY", value_name = "DIR")]
    library: Option<PathBuf>,
    /// Image–text model (OpenAI CLIP, OpenCLIP, SigLIP, SigLIP 2 fixed-resolution; `shoebox
    /// models list` shows good ones): a Hugging Face hub id or a local model folder [env:
    /// SHOEBOX_CLIP_MODEL] [default: openai/clip-vit-base-patch32]
    #[arg(long, global = true, value_name = "ID_OR_DIR")]
    clip_model: Option<String>,
    /// Captioning model (BLIP or ViT-GPT2): a Hugging Face hub id or a local model folder
    /// [env: SHOEBOX_CAPTION_MODEL] [default: Salesforce/blip-image-captioning-base]
    #[arg(long, global = true, value_name = "ID_OR_DIR")]
    caption_model: Option<String>,
    /// Sentence encoder for caption tags and hybrid search: a hub id or a local model folder
    /// [env: SHOEBOX_TEXT_MODEL] [default: sentence-transformers/all-MiniLM-L6-v2]
    #[arg(long, global = true, value_name = "ID_OR_DIR")]
    text_model: Option<String>,
    /// Encoder for query texts (search terms, classify labels) trained into the CLIP model's
    /// space, e.g. sentence-transformers/clip-ViT-B-32-multilingual-v1 for queries in 50+
    /// languages: a hub id or a local folder [env: SHOEBOX_QUERY_MODEL] [default: none, the CLIP
    /// model's own text tower]
    #[arg(long, global = true, value_name = "ID_OR_DIR")]
    query_model: Option<String>,
    /// Compute device: auto, cpu, cuda or metal [env: SHOEBOX_DEVICE] [default: auto]
    #[arg(long, global = true, value_name = "DEVICE", value_parser = engine_value::<DeviceChoice>)]
    device: Option<DeviceChoice>,
    /// How the encoders hold and multiply their weights on the CPU: f32, or q8 (int8: a quarter
    /// of the memory, faster where the CPU has int8 dot products) [env: SHOEBOX_PRECISION]
    /// [default: f32]
    #[arg(long, global = true, value_name = "PRECISION", value_parser = engine_value::<Precision>)]
    precision: Option<Precision>,
    /// A RAW file beside a JPEG of the same name: `pair` (the JPEG is the photo, the RAW its
    /// original) or `separate` (both are photos) [env: SHOEBOX_RAW] [default: pair]
    #[arg(long, global = true, value_name = "MODE", value_parser = engine_value::<RawMode>)]
    raw: Option<RawMode>,
    /// Print only results and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more detail (repeat for debug logs)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Parse a flag with the engine's own parser, so the CLI and the app accept the same words.
fn engine_value<T: std::str::FromStr<Err = shoebox_core::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: shoebox_core::Error| e.to_string())
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Add photo folders to the library (and scan them)
    Add {
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Remove folders from the library (the photos on disk are not touched)
    Remove {
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
    },
    /// Scan the folders and embed every new or changed photo
    Index {
        /// Images per model call
        #[arg(long, default_value_t = PipelineOptions::default().batch_size, hide = true)]
        batch_size: usize,
        /// Decode threads
        #[arg(long, default_value_t = PipelineOptions::default().decode_threads, hide = true)]
        decode_threads: usize,
        /// Then caption every photo that lacks a caption (slow on CPU: seconds per photo)
        #[arg(long)]
        captions: bool,
        #[command(flatten)]
        caption: CaptionArgs,
        #[command(flatten)]
        ocr: OcrArgs,
    },
    /// Write a caption for image files (in the library or not)
    #[command(arg_required_else_help = true)]
    Caption {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        caption: CaptionArgs,
        /// Print one JSON array
        #[arg(long)]
        json: bool,
    },
    /// Keep the index current while running: new, changed, moved and deleted photos are absorbed
    /// within seconds (Ctrl-C stops cleanly)
    Watch {
        /// Also caption photos in the background, a few at a time while nothing else is waiting
        #[arg(long)]
        captions: bool,
        #[command(flatten)]
        caption: CaptionArgs,
        #[command(flatten)]
        ocr: OcrArgs,
    },
    /// Show folders, counts and index state
    Status {
        #[arg(long)]
        json: bool,
        /// List the files that failed, with reasons
        #[arg(long)]
        failed: bool,
    },
    /// Find photos by description, by example image, or both; with no query, list the photos that
    /// pass the filters newest first
    Search(SearchArgs),
    /// Find exact copies and near-duplicates (resized, re-encoded, slightly cropped or brightened);
    /// --trash puts all but each group's keeper in the system trash (undo with --undo)
    Duplicates {
        /// Only photos under this folder (repeatable)
        #[arg(long = "in", value_name = "DIR")]
        in_dirs: Vec<PathBuf>,
        /// CLIP cosine at or above which photos may be near-duplicates [default: 0.90]
        #[arg(long, value_name = "T")]
        threshold: Option<f32>,
        /// Most perceptual-hash bits (of 128) near-duplicates may differ in [default: 18]
        #[arg(long, value_name = "BITS", hide = true)]
        max_hash_distance: Option<u32>,
        /// Put every photo but its group's keeper in the system trash (journaled, undoable)
        #[arg(long, conflicts_with = "undo")]
        trash: bool,
        /// With --trash: say what would go, move nothing
        #[arg(long, requires = "trash")]
        dry_run: bool,
        /// Take the files of a --trash run back out of the trash
        #[arg(long, value_name = "JOURNAL")]
        undo: Option<PathBuf>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// List the places photos were taken at (from their GPS), with photo counts
    Places {
        #[arg(long)]
        json: bool,
    },
    /// Sort images into labels you type (zero-shot), optionally moving or copying them into folders
    #[command(arg_required_else_help = true)]
    Classify(ClassifyArgs),
    /// Measure indexing, search, memory and model speed on generated inputs
    Bench(bench::BenchArgs),
    /// Add or remove your own tags (a removed tag never comes back from the automatic ones)
    #[command(arg_required_else_help = true)]
    Tag {
        #[command(subcommand)]
        action: TagAction,
    },
    /// List photos' tags, or every tag with its count (--all)
    Tags {
        #[arg(value_name = "PATH", required_unless_present = "all")]
        paths: Vec<PathBuf>,
        /// Every tag in the library with how many photos carry it
        #[arg(long, conflicts_with = "paths")]
        all: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the normalized embeddings the library uses for texts (through the query model when
    /// one is set) and images (a library photo's stored one), for other tools and for checking
    /// against the reference implementation
    #[command(arg_required_else_help = true)]
    Embed {
        /// Text to embed (repeatable)
        #[arg(long = "text", value_name = "T")]
        texts: Vec<String>,
        /// Image files to embed
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print a JSON array: [{"input", "kind": "text"|"image", "model", "embedding": [...]}]
        #[arg(long)]
        json: bool,
    },
    /// List or fetch models
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

#[derive(Subcommand, Debug)]
enum TagAction {
    /// Tag photos: shoebox tag add PATH... TAG
    Add {
        #[arg(required = true, num_args = 2.., value_name = "PATH... TAG")]
        args: Vec<String>,
    },
    /// Untag photos for good: shoebox tag remove PATH... TAG
    Remove {
        #[arg(required = true, num_args = 2.., value_name = "PATH... TAG")]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsAction {
    /// The models Shoebox knows to load and what each is good for, what the Hugging Face cache
    /// holds, and the models this library has embeddings from
    List {
        /// Print a JSON array: [{"id", "kind", "dims", "size_mb", "languages", "cached", "note"}]
        #[arg(long)]
        json: bool,
    },
    /// Drop an image–text model's embeddings and index from this library
    Remove { id: String },
    /// Fetch a model into the Hugging Face cache [default: the configured CLIP model]
    Pull { id: Option<String> },
    /// Write a quantized (GGUF) copy of a BLIP captioner into a new folder, usable as
    /// --caption-model DEST
    Quantize {
        /// Hub id or folder of the BLIP model [default: the configured captioner]
        #[arg(long, value_name = "ID_OR_DIR")]
        from: Option<String>,
        /// Folder to create
        dest: PathBuf,
        /// Quantization of the weight matrices: q8_0 (best quality), q5k, q4k (smallest), f16
        #[arg(long = "type", default_value = "q8_0")]
        qtype: String,
    },
}

#[derive(Args, Debug)]
struct SearchArgs {
    /// What to look for; compound: "2:beach + sunset - people"; a term may be an image path
    #[arg(value_name = "QUERY")]
    query: Option<String>,
    /// Search by an example image (repeatable; need not be in the library)
    #[arg(long, value_name = "IMAGE")]
    like: Vec<PathBuf>,
    /// Only photos under this folder (repeatable)
    #[arg(long = "in", value_name = "DIR")]
    in_dirs: Vec<PathBuf>,
    /// Only photos taken at or after DATE (YYYY, YYYY-MM, YYYY-MM-DD)
    #[arg(long, value_name = "DATE")]
    after: Option<String>,
    /// Only photos taken before DATE
    #[arg(long, value_name = "DATE")]
    before: Option<String>,
    /// Only these file types, e.g. jpg,png
    #[arg(long = "type", value_name = "EXT,...", value_delimiter = ',')]
    types: Vec<String>,
    /// Drop results scoring below S (cosine similarity)
    #[arg(long, value_name = "S")]
    min_score: Option<f32>,
    /// Number of results [default: 20]
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Order of results: score or date [default: score]
    #[arg(long, value_name = "ORDER", value_parser = engine_value::<SortBy>)]
    sort: Option<SortBy>,
    /// Only photos with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only photos taken in this city, region or country (repeatable: any may match; case and
    /// accents do not matter)
    #[arg(long = "place", value_name = "NAME")]
    places: Vec<String>,
    /// Only photos taken within KM kilometres of a position [default KM: 25]
    #[arg(long, value_name = "LAT,LON[,KM]", allow_hyphen_values = true)]
    near: Option<String>,
    /// Ranking: clip (image embeddings), text (caption embeddings), keyword (words in the photo's
    /// text, caption, tags and path) or hybrid (all there are, fused) [default: hybrid when the
    /// query is text only and captions are embedded or words match, else clip]. A "quoted phrase"
    /// in the query is required: only photos whose text, caption, tags or path contain it
    #[arg(long, value_name = "MODE", value_parser = engine_value::<SearchMode>)]
    mode: Option<SearchMode>,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct OcrArgs {
    /// Read the text in every photo that has none read yet (OCR; about a second per photo).
    /// Without it, only photos likely to hold text (screenshots, documents, receipts, signs) are
    /// read, or none with SHOEBOX_OCR=off [env: SHOEBOX_OCR=off|likely|all]
    #[arg(long)]
    ocr: bool,
    /// Languages to read, Tesseract's names joined by '+' (each needs its tesseract-ocr-LANG
    /// package) [env: SHOEBOX_OCR_LANGS] [default: eng]
    #[arg(long = "ocr-lang", value_name = "LANGS")]
    ocr_lang: Option<String>,
}

impl OcrArgs {
    /// Defaults < environment < flags.
    fn options(&self) -> Result<OcrOptions> {
        let mut o = OcrOptions::from_env()?;
        if self.ocr {
            o.mode = OcrMode::All;
        }
        if let Some(l) = &self.ocr_lang {
            o.langs = shoebox_core::ocr::parse_langs(l)?;
        }
        Ok(o)
    }
}

#[derive(Args, Debug, Clone, Copy)]
struct CaptionArgs {
    /// Beam search width (1 = greedy, the fastest)
    #[arg(long, default_value_t = 1, value_name = "N")]
    beams: usize,
    /// Longest caption, in tokens
    #[arg(long, default_value_t = 20, value_name = "N")]
    max_tokens: usize,
}

impl CaptionArgs {
    fn options(self) -> CaptionOptions {
        CaptionOptions {
            beams: self.beams.max(1),
            max_tokens: self.max_tokens.max(1),
            ..CaptionOptions::default()
        }
    }
}

#[derive(Args, Debug)]
struct ClassifyArgs {
    /// Image files or folders
    #[arg(value_name = "PATH", required_unless_present = "undo")]
    paths: Vec<PathBuf>,
    /// Comma-separated labels; a label may carry its own prompt: "receipt=a photo of a paper receipt"
    #[arg(long, value_name = "\"a, b, c\"", required_unless_present = "undo")]
    labels: Option<String>,
    /// Confidence (probability of the best label) below which an image is "unsorted"
    #[arg(long, value_name = "T", default_value_t = shoebox_core::classify::DEFAULT_THRESHOLD)]
    threshold: f32,
    /// Report only the K best labels per image
    #[arg(long, value_name = "K")]
    top: Option<usize>,
    /// Include images in subfolders
    #[arg(long)]
    recursive: bool,
    /// Prompt template ({} is the label); repeatable; replaces the built-in ensemble
    #[arg(long, value_name = "TEMPLATE")]
    template: Vec<String>,
    /// Move each image into DEST/<label>/
    #[arg(long = "move", value_name = "DEST", conflicts_with = "copy_to")]
    move_to: Option<PathBuf>,
    /// Copy each image into DEST/<label>/
    #[arg(long = "copy", value_name = "DEST")]
    copy_to: Option<PathBuf>,
    /// Show what would be moved or copied, and do nothing
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV
    #[arg(long)]
    csv: bool,
    /// Undo a --move or --copy run from its journal
    #[arg(long, value_name = "JOURNAL", conflicts_with_all = ["paths", "labels", "move_to", "copy_to"])]
    undo: Option<PathBuf>,
}

/// The models and device: the engine's defaults and environment, then the flags.
fn models(cli: &Cli) -> Result<ModelOptions> {
    let mut m = ModelOptions::default();
    m.apply_env_models();
    m.device = match cli.device {
        Some(d) => d,
        None => options::env_device()?.unwrap_or_default(),
    };
    m.precision = match cli.precision {
        Some(p) => p,
        None => options::env_precision()?.unwrap_or_default(),
    };
    if let Some(v) = &cli.clip_model {
        m.clip_model = v.clone();
    }
    if let Some(v) = &cli.caption_model {
        m.caption_model = v.clone();
    }
    if let Some(v) = &cli.text_model {
        m.text_model = v.clone();
    }
    if let Some(v) = &cli.query_model {
        // An empty value switches an environment's query model off.
        m.query_model = Some(v.trim().to_string()).filter(|v| !v.is_empty());
    }
    Ok(m)
}

/// Progress bars for model downloads unless --quiet.
fn download_progress(cli: &Cli) -> DownloadProgress {
    if cli.quiet {
        DownloadProgress::Quiet
    } else {
        DownloadProgress::Bar
    }
}

fn open(cli: &Cli) -> Result<Library> {
    let m = models(cli)?;
    let mut lib = Library::open(LibraryOptions {
        dir: options::library_dir(cli.library.clone())?,
        clip_model: m.clip_model,
        caption_model: m.caption_model,
        text_model: m.text_model,
        query_model: m.query_model,
        device: m.device,
        precision: m.precision,
        downloads: download_progress(cli),
    })?;
    if let Some(mode) = cli.raw {
        lib.set_raw_mode(mode);
    }
    Ok(lib)
}

/// What a person at a terminal can do about an engine error, in this CLI's terms.
fn hint(e: &shoebox_core::Error) -> Option<String> {
    use shoebox_core::Error as E;
    Some(match e {
        E::NotDownloaded { id, .. } => format!(
            "connect to the internet and run `shoebox models pull {id}`, or download the model \
             folder on another machine and pass it with `--clip-model /path/to/folder` (or \
             SHOEBOX_CLIP_MODEL=/path/to/folder; --caption-model and --text-model for those models)"
        ),
        E::DeviceUnavailable { device, .. } => format!(
            "build with `--features {device}` on a machine that has it, or pass --device cpu"
        ),
        E::NoLibraryFolder => "pass --library DIR or set SHOEBOX_LIBRARY".into(),
        E::NotALibraryFolder(_) => "see `shoebox status` for the library's folders".into(),
        E::NotInLibrary(_) => {
            "add its folder with `shoebox add DIR` and run `shoebox index`".into()
        }
        E::NothingToSearch => "give a QUERY or --like IMAGE".into(),
        E::TextRankingNeedsText | E::KeywordRankingNeedsText => {
            "use --mode clip to search by image".into()
        }
        E::EmptyLibrary => "run `shoebox add DIR` and `shoebox index`".into(),
        E::PartlyApplied { journal, .. } => {
            format!("undo: shoebox classify --undo {}", journal.display())
        }
        _ => return None,
    })
}

/// An error for the terminal: its message once (causes already in it are not repeated), then a hint.
fn explain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    if let Some(h) = e
        .chain()
        .find_map(|c| c.downcast_ref::<shoebox_core::Error>())
        .and_then(hint)
    {
        msg.push_str(&format!("\n  hint: {h}"));
    }
    msg
}

fn main() -> ExitCode {
    shoebox_core::models::parallel::keep_candle_pool_out();
    // `shoebox tags --all | head` must end quietly, as other Unix tools do, not panic on EPIPE.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", explain(&e));
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Add { dirs } => {
            let mut lib = open(cli)?;
            let (added, scan) = lib.add_folders(dirs)?;
            if !cli.quiet {
                for (p, new) in added {
                    let what = if new {
                        "added"
                    } else {
                        "already in the library:"
                    };
                    println!("{what} {}", display_path(&p));
                }
                println!(
                    "{} images found ({} new); run `shoebox index` to make them searchable",
                    scan.seen, scan.added
                );
            }
        }
        Command::Remove { dirs } => {
            let mut lib = open(cli)?;
            for p in lib.remove_folders(dirs)? {
                if !cli.quiet {
                    println!("removed {}", display_path(&p));
                }
            }
        }
        Command::Index {
            batch_size,
            decode_threads,
            captions,
            caption,
            ocr,
        } => {
            let ocr = ocr.options()?;
            let mut lib = open(cli)?;
            let cancel = cancel_on_ctrl_c()?;
            index(cli, &mut lib, &cancel, *batch_size, *decode_threads)?;
            if *captions && !cancel.load(Ordering::SeqCst) {
                caption_library(cli, &mut lib, &cancel, caption.options())?;
            }
            if !cancel.load(Ordering::SeqCst) {
                ocr_library(cli, &mut lib, &cancel, &ocr)?;
            }
        }
        Command::Caption {
            files,
            caption,
            json,
        } => caption_files(cli, files, caption.options(), *json)?,
        Command::Status { json, failed } => {
            let lib = open(cli)?;
            let st = lib.status(*failed)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print_status(&st);
            }
        }
        Command::Search(args) => search(cli, args)?,
        Command::Embed { texts, files, json } => {
            let lib = open(cli)?;
            let out = lib.embed_inputs(texts, files)?;
            if *json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                // One line each: kind, input, model, then the values (tab-separated).
                for e in &out {
                    let values: Vec<String> = e.embedding.iter().map(f32::to_string).collect();
                    let kind = match e.kind {
                        shoebox_core::library::EmbeddedKind::Text => "text",
                        shoebox_core::library::EmbeddedKind::Image => "image",
                    };
                    println!("{kind}\t{}\t{}\t{}", e.input, e.model, values.join(" "));
                }
            }
        }
        Command::Places { json } => places(cli, *json)?,
        Command::Duplicates {
            in_dirs,
            threshold,
            max_hash_distance,
            trash,
            dry_run,
            undo,
            json,
        } => match undo {
            Some(journal) => undo_trash(cli, journal, *json)?,
            None => duplicates(
                cli,
                &DuplicatesRequest {
                    in_dirs: in_dirs.clone(),
                    threshold: *threshold,
                    max_hash_distance: *max_hash_distance,
                },
                (*trash).then_some(*dry_run),
                *json,
            )?,
        },
        Command::Tag { action } => {
            let mut lib = open(cli)?;
            let (add, args) = match action {
                TagAction::Add { args } => (true, args),
                TagAction::Remove { args } => (false, args),
            };
            let (tag, paths) = args.split_last().expect("clap requires two");
            let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            if add {
                let n = lib.add_tag(&paths, tag)?;
                if !cli.quiet {
                    println!("tagged {n} photos \"{tag}\"");
                }
            } else {
                let n = lib.remove_tag(&paths, tag)?;
                if !cli.quiet {
                    println!("removed \"{tag}\" from {n} photos");
                }
            }
        }
        Command::Tags { paths, all, json } => {
            let lib = open(cli)?;
            if *all {
                let counts = lib.all_tags()?;
                if *json {
                    println!("{}", serde_json::to_string(&counts)?);
                } else {
                    for c in counts {
                        println!("{:>6}  {}", c.count, c.tag);
                    }
                }
            } else {
                let tags = lib.photo_tags(paths)?;
                if *json {
                    println!("{}", serde_json::to_string(&tags)?);
                } else {
                    for p in tags {
                        let list: Vec<String> = p
                            .tags
                            .iter()
                            .map(|t| format!("{} ({} {:.2})", t.tag, t.source, t.score))
                            .collect();
                        println!("{}: {}", p.path, list.join(", "));
                    }
                }
            }
        }
        Command::Watch {
            captions,
            caption,
            ocr,
        } => watch(cli, captions.then(|| caption.options()), ocr.options()?)?,
        Command::Classify(args) => classify(cli, args)?,
        Command::Bench(args) => {
            let m = models(cli)?;
            bench::run(args, &m, cli.quiet)?
        }
        Command::Models { action } => match action {
            ModelsAction::List { json } => {
                let menu = shoebox_core::models::menu::menu();
                if *json {
                    println!("{}", serde_json::to_string(&menu)?);
                    return Ok(());
                }
                println!("Models (hub ids; `shoebox models pull ID` fetches one):");
                for e in &menu {
                    let kind = serde_json::to_value(e.kind)?;
                    let dims = e.dims.map(|d| format!(", {d}-d")).unwrap_or_default();
                    let size = e.size_mb.map(|m| format!(", {m} MB")).unwrap_or_default();
                    let cached = if e.cached { ", cached" } else { "" };
                    let langs = if e.languages.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", e.languages)
                    };
                    println!(
                        "  {}  ({}{dims}{size}{langs}{cached})\n      {}",
                        e.id,
                        kind.as_str().unwrap_or_default(),
                        e.note
                    );
                }
                let lib = open(cli)?;
                let current = lib.model_name();
                let serving = lib.search_model()?;
                println!("\nThis library (configured: {current}):");
                for m in lib.model_coverage()? {
                    let mark = if m.id == current { "*" } else { " " };
                    let searching = if m.id == serving {
                        ", searches use it"
                    } else {
                        ""
                    };
                    println!(
                        "{mark} {}  ({} of {} photos embedded{searching})",
                        m.id, m.embedded, m.of
                    );
                }
            }
            ModelsAction::Remove { id } => {
                let mut lib = open(cli)?;
                if !lib.remove_model(id)? {
                    anyhow::bail!(
                        "this library has no embeddings from {id} (see `shoebox models list`)"
                    );
                }
                if !cli.quiet {
                    println!("removed {id}'s embeddings and index");
                }
            }
            ModelsAction::Quantize { from, dest, qtype } => {
                let spec = match from {
                    Some(f) => f.clone(),
                    None => models(cli)?.caption_model,
                };
                let (q, kept) =
                    captions::quantize_captioner(&spec, dest, qtype, &download_progress(cli))?;
                println!(
                    "{spec}: {q} matrices quantized to {qtype}, {kept} tensors kept in f32 -> {}",
                    dest.join("model.gguf").display()
                );
            }
            ModelsAction::Pull { id } => {
                let spec = match id {
                    Some(i) => i.clone(),
                    None => models(cli)?.clip_model,
                };
                let dir = Library::pull_model(&spec, &download_progress(cli))?;
                println!("{spec}: ready in {}", dir.display());
            }
        },
    }
    Ok(())
}

/// A flag set by Ctrl-C (a second Ctrl-C exits at once).
fn cancel_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current batch (Ctrl-C again to quit at once)…");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(cancel)
}

fn watch(cli: &Cli, captions: Option<CaptionOptions>, ocr: OcrOptions) -> Result<()> {
    let mut lib = open(cli)?;
    if captions.is_some() {
        lib.captioner()?;
    }
    let cancel = cancel_on_ctrl_c()?;
    let quiet = cli.quiet;
    let opts = shoebox_core::watch::WatchOptions {
        captions,
        ocr: (ocr.mode != OcrMode::Off).then_some(ocr),
        ..Default::default()
    };
    lib.watch(opts, &cancel, &mut |ev| match ev {
        WatchEvent::Watching { native, polled } => {
            if !quiet {
                println!(
                    "watching {native} folders natively, {polled} by polling (Ctrl-C to stop)"
                );
            }
        }
        WatchEvent::Rescan { reason } => eprintln!("rescanning: {reason}"),
        WatchEvent::Captioned(r) => {
            if !quiet {
                println!("{} captioned", r.captioned);
            }
        }
        WatchEvent::Read(r) => {
            if !quiet {
                println!("text read in {} photos ({} with text)", r.read, r.with_text);
            }
        }
        WatchEvent::OcrStopped { reason } => eprintln!("OCR is off: {reason}"),
        WatchEvent::Indexed(r) => {
            let (s, p) = (r.scan, r.pipeline);
            if !quiet && (s.added + s.changed + s.moved + s.removed + p.embedded + p.failed) > 0 {
                println!(
                    "{} new, {} changed, {} moved, {} removed; {} embedded, {} failed",
                    s.added, s.changed, s.moved, s.removed, p.embedded, p.failed
                );
            }
        }
    })?;
    Ok(())
}

fn index(
    cli: &Cli,
    lib: &mut Library,
    cancel: &AtomicBool,
    batch_size: usize,
    decode_threads: usize,
) -> Result<()> {
    let bar = progress_bar(cli, "indexing");
    let opts = PipelineOptions {
        batch_size,
        decode_threads,
    };
    let report = lib.index(opts, cancel, &mut |p| show_progress(&bar, p))?;
    bar.finish_and_clear();
    let s = report.scan;
    let p = report.pipeline;
    if !cli.quiet {
        println!(
            "scan: {} images ({} new, {} changed, {} moved, {} removed, {} problems)",
            s.seen, s.added, s.changed, s.moved, s.removed, s.issues
        );
        let rate = if p.seconds > 0.0 {
            (p.embedded + p.failed) as f64 / p.seconds
        } else {
            0.0
        };
        println!(
            "indexed {} photos, {} failed, in {:.1}s ({rate:.1} img/s){}",
            p.embedded,
            p.failed,
            p.seconds,
            if p.interrupted {
                " — interrupted; run `shoebox index` again to resume"
            } else {
                ""
            }
        );
        if p.failed > 0 || s.issues > 0 {
            println!("see `shoebox status --failed` for what failed and why");
        }
        let t = &report.tags;
        if t.clip_tagged + t.caption_tagged + t.captions_embedded > 0 {
            println!(
                "tagged {} photos from CLIP, {} from captions; {} captions embedded for search",
                t.clip_tagged, t.caption_tagged, t.captions_embedded
            );
        }
        if let Some(why) = &t.skipped {
            eprintln!("note: caption tags and caption search skipped: {why}");
        }
    }
    Ok(())
}

/// Read the text in the photos `opts` selects. OCR that cannot start (no Tesseract data for a
/// language, a build without OCR) is a note, not a failed `index`: the photos are indexed.
fn ocr_library(cli: &Cli, lib: &mut Library, cancel: &AtomicBool, opts: &OcrOptions) -> Result<()> {
    let bar = progress_bar(cli, "reading text");
    let r = lib.ocr_library(opts, None, cancel, &mut |p| {
        show_progress(
            &bar,
            Progress {
                total: p.total,
                done: p.done,
                embedded: p.done,
                failed: 0,
            },
        )
    });
    bar.finish_and_clear();
    let r = match r {
        Ok(r) => r,
        Err(e @ shoebox_core::Error::Ocr(_)) => {
            eprintln!("note: text in photos not read: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if !cli.quiet && r.read + r.failed > 0 {
        println!(
            "read text in {} photos ({} with text, {} failed) in {:.1}s{}",
            r.read,
            r.with_text,
            r.failed,
            r.seconds,
            if r.interrupted {
                " — interrupted; run `shoebox index` again to resume"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn caption_library(
    cli: &Cli,
    lib: &mut Library,
    cancel: &AtomicBool,
    opts: CaptionOptions,
) -> Result<()> {
    lib.captioner()?;
    let bar = progress_bar(cli, "captioning");
    let r = lib.caption_library(&opts, None, cancel, &mut |p: CaptionProgress| {
        show_progress(
            &bar,
            Progress {
                total: p.total,
                done: p.done,
                embedded: p.captioned,
                failed: p.failed,
            },
        )
    })?;
    bar.finish_and_clear();
    if !cli.quiet {
        let per = if r.captioned > 0 {
            r.seconds / r.captioned as f64
        } else {
            0.0
        };
        println!(
            "captioned {} photos, {} skipped, in {:.1}s ({per:.2} s/photo){}",
            r.captioned,
            r.failed,
            r.seconds,
            if r.interrupted {
                " — interrupted; run `shoebox index --captions` again to resume"
            } else {
                ""
            }
        );
    }
    if !cancel.load(Ordering::SeqCst) {
        let t = lib.tag_library(cancel)?;
        if !cli.quiet && t.caption_tagged + t.captions_embedded > 0 {
            println!(
                "tagged {} photos from their captions; {} captions embedded for search",
                t.caption_tagged, t.captions_embedded
            );
        }
        if let Some(why) = &t.skipped {
            eprintln!("note: caption tags and caption search skipped: {why}");
        }
    }
    Ok(())
}

fn caption_files(cli: &Cli, files: &[PathBuf], opts: CaptionOptions, json: bool) -> Result<()> {
    let m = models(cli)?;
    let cap = captions::load_captioner(
        &m.caption_model,
        m.device,
        m.precision,
        &download_progress(cli),
    )?;
    let mut out = Vec::new();
    let mut failed = 0;
    for f in files {
        match captions::caption_file(&cap, f, &opts) {
            Ok(c) => {
                if !json {
                    println!("{}\t{}", c.path, c.caption);
                }
                out.push(c);
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string(&out)?);
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be captioned", files.len());
    }
    Ok(())
}

fn progress_bar(cli: &Cli, what: &str) -> ProgressBar {
    let bar = if cli.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn show_progress(bar: &ProgressBar, p: Progress) {
    bar.set_length(p.total as u64);
    bar.set_position(p.done as u64);
    if p.failed > 0 {
        bar.set_message(format!("{} failed", p.failed));
    }
}

fn classify(cli: &Cli, a: &ClassifyArgs) -> Result<()> {
    let mut lib = open(cli)?;
    if let Some(journal) = &a.undo {
        let report = lib.undo_classification_file(journal)?;
        for (path, why) in &report.skipped {
            eprintln!("left {}: {why}", display_path(path));
        }
        if !cli.quiet {
            println!(
                "restored {} files from {}",
                report.restored,
                journal.display()
            );
        }
        if !report.skipped.is_empty() {
            anyhow::bail!(
                "{} files were left where they are (see above); the journal was kept",
                report.skipped.len()
            );
        }
        return Ok(());
    }
    let labels = classify::parse_labels(a.labels.as_deref().unwrap_or_default())?;
    let mut opts = classify::ClassifyOptions {
        threshold: a.threshold,
        recursive: a.recursive,
        ..Default::default()
    };
    if !a.template.is_empty() {
        opts.templates = a.template.clone();
    }
    let bar = progress_bar(cli, "embedding");
    let never = AtomicBool::new(false);
    let result = lib.classify(&a.paths, &labels, &opts, &never, &mut |p| {
        show_progress(&bar, p)
    })?;
    bar.finish_and_clear();
    for (path, reason) in &result.failures {
        eprintln!("skipped {}: {reason}", display_path(path));
    }
    let action = match (&a.move_to, &a.copy_to) {
        (Some(d), _) => Some((classify::Action::Move, d)),
        (_, Some(d)) => Some((classify::Action::Copy, d)),
        _ => None,
    };
    let mut journal = None;
    if let Some((action, dest)) = action {
        let ops = classify::plan(&result.results, action, dest)?;
        if a.dry_run {
            if !a.json && !a.csv {
                for op in &ops {
                    println!(
                        "would {:?} {} -> {}",
                        op.op,
                        display_path(&op.from),
                        display_path(&op.to)
                    );
                }
            }
        } else {
            // Photos of the library that moved keep their embeddings (the rescan sees them as moves).
            let applied = lib.apply_classification(&ops, dest).map_err(|f| {
                let journal = f.journal.as_ref().filter(|j| !j.entries.is_empty());
                match journal {
                    Some(j) => anyhow::anyhow!(
                        "{}; {} files were already sorted (undo: shoebox classify --undo {})",
                        f.error,
                        j.entries.len(),
                        j.path.display()
                    ),
                    None => anyhow::Error::new(f.error),
                }
            })?;
            journal = Some(applied.path);
        }
    }
    let top = a.top.unwrap_or(usize::MAX).max(1);
    let ranked = |scores: &[f32]| -> Vec<(usize, f32)> {
        let mut v: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
        v.sort_by(shoebox_core::rank::by_score_desc);
        v.truncate(top);
        v
    };
    if a.json {
        let results: Vec<serde_json::Value> = result
            .results
            .iter()
            .map(|r| {
                let scores: serde_json::Map<String, serde_json::Value> = ranked(&r.scores)
                    .into_iter()
                    .map(|(i, p)| (result.labels[i].clone(), serde_json::json!(p)))
                    .collect();
                serde_json::json!({
                    "path": display_path(&r.path),
                    "label": r.label,
                    "confidence": r.confidence,
                    "scores": scores,
                })
            })
            .collect();
        let out = serde_json::json!({
            "labels": result.labels,
            "results": results,
            "journal": journal.as_ref().map(|j| display_path(j)),
        });
        println!("{}", serde_json::to_string(&out)?);
    } else if a.csv {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        let mut header = vec!["path".to_string(), "label".into(), "confidence".into()];
        header.extend(result.labels.iter().cloned());
        w.write_record(&header)?;
        for r in &result.results {
            let mut row = vec![
                display_path(&r.path),
                r.label.clone(),
                format!("{:.4}", r.confidence),
            ];
            row.extend(r.scores.iter().map(|p| format!("{p:.4}")));
            w.write_record(&row)?;
        }
        w.flush()?;
    } else {
        let mut groups: Vec<String> = result.labels.clone();
        groups.push(classify::UNSORTED.to_string());
        for g in groups {
            let members: Vec<_> = result.results.iter().filter(|r| r.label == g).collect();
            if members.is_empty() {
                continue;
            }
            println!("{g} ({})", members.len());
            for r in members {
                let best: Vec<String> = ranked(&r.scores)
                    .into_iter()
                    .take(a.top.unwrap_or(1))
                    .map(|(i, p)| format!("{} {p:.2}", result.labels[i]))
                    .collect();
                println!("  {}  [{}]", display_path(&r.path), best.join(", "));
            }
        }
        if !cli.quiet {
            println!(
                "{} images in {:.1}s ({} embedded now, the rest from the library)",
                result.results.len(),
                result.seconds,
                result.embedded
            );
            if let Some(j) = &journal {
                println!(
                    "journal: {}  (undo: shoebox classify --undo {})",
                    j.display(),
                    j.display()
                );
            }
        }
    }
    Ok(())
}

fn search(cli: &Cli, a: &SearchArgs) -> Result<()> {
    let mut lib = open(cli)?;
    let req = SearchInput {
        query: a.query.clone(),
        like: a.like.clone(),
        in_dirs: a.in_dirs.clone(),
        after: a.after.clone(),
        before: a.before.clone(),
        types: a.types.clone(),
        tags: a.tags.clone(),
        places: a.places.clone(),
        near: a.near.clone(),
        min_score: a.min_score,
        limit: a.limit,
        sort: a.sort.unwrap_or_default(),
        mode: a.mode,
    }
    .into_request()?;
    let resp = lib.search(&req)?;
    if a.json {
        println!("{}", serde_json::to_string(&resp)?);
        return Ok(());
    }
    if resp.results.is_empty() && !cli.quiet {
        let st = lib.status(false)?;
        if st.photos.indexed == 0 {
            eprintln!(
                "no photos are indexed for {} yet: run `shoebox add DIR` and `shoebox index`",
                st.model
            );
        } else {
            eprintln!("no matches");
        }
    }
    if !resp.place_filter.is_empty() && !cli.quiet {
        eprintln!("place: {}", resp.place_filter.join(", "));
    }
    for h in &resp.results {
        if resp.mode == SearchMode::Timeline {
            println!("{:>3}  {:<19}  {}", h.rank, h.date, h.path);
        } else {
            println!("{:>3}  {:.3}  {}", h.rank, h.score, h.path);
        }
    }
    Ok(())
}

/// `trash`: None to only list; Some(dry_run) to put non-keepers in the trash.
fn duplicates(cli: &Cli, req: &DuplicatesRequest, trash: Option<bool>, json: bool) -> Result<()> {
    let mut lib = open(cli)?;
    let report = lib.duplicates(req)?;
    let doomed = report.non_keepers();
    let journal = match trash {
        Some(false) if !doomed.is_empty() => Some(lib.trash_photos(&doomed)?.path),
        _ => None,
    };
    if json {
        let mut v = serde_json::to_value(&report)?;
        if trash.is_some() {
            v["trashed"] =
                serde_json::json!(doomed.iter().map(|p| display_path(p)).collect::<Vec<_>>());
            v["dry_run"] = serde_json::json!(trash == Some(true));
            v["journal"] = serde_json::json!(journal.as_deref().map(display_path));
        }
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    if report.groups.is_empty() && !cli.quiet {
        eprintln!("no duplicates (threshold {})", report.threshold);
    }
    for (i, g) in report.groups.iter().enumerate() {
        let kind = match g.kind {
            DuplicateKind::Exact => "exact copies",
            DuplicateKind::Near => "near-duplicates",
        };
        println!("group {} ({kind}):", i + 1);
        for p in &g.photos {
            let dims = match (p.width, p.height) {
                (Some(w), Some(h)) => format!("{w}×{h}"),
                _ => "?".into(),
            };
            println!(
                "  {} {:>11}  {:>9} B  {:<19}  {}",
                if p.keep { "keep " } else { "     " },
                dims,
                p.size,
                p.taken_at.as_deref().unwrap_or(""),
                p.path
            );
        }
    }
    match (trash, journal) {
        (Some(true), _) if !cli.quiet => eprintln!(
            "dry run: {} files would go to the trash; nothing was moved",
            doomed.len()
        ),
        (Some(false), Some(j)) if !cli.quiet => eprintln!(
            "put {} files in the trash; undo: shoebox duplicates --undo {}",
            doomed.len(),
            display_path(&j)
        ),
        _ => {}
    }
    Ok(())
}

fn undo_trash(cli: &Cli, journal: &Path, json: bool) -> Result<()> {
    let mut lib = open(cli)?;
    let r = lib.undo_trash_file(journal)?;
    // The photos are back: index them again (their earlier rows went when they were trashed).
    if r.restored > 0 {
        lib.index(
            PipelineOptions::default(),
            &AtomicBool::new(false),
            &mut |_| {},
        )?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"restored": r.restored, "not_in_trash": r.not_done,
                "skipped": r.skipped.iter().map(|(p, why)| serde_json::json!({"path": display_path(p), "reason": why})).collect::<Vec<_>>()})
        );
    } else if !cli.quiet {
        eprintln!("took {} files back out of the trash", r.restored);
        for (p, why) in &r.skipped {
            eprintln!("  left in the trash: {}: {why}", p.display());
        }
    }
    if !r.skipped.is_empty() {
        anyhow::bail!("{} files could not be put back", r.skipped.len());
    }
    Ok(())
}

fn places(cli: &Cli, json: bool) -> Result<()> {
    let lib = open(cli)?;
    let places = lib.places()?;
    if json {
        println!("{}", serde_json::to_string(&places)?);
        return Ok(());
    }
    if places.is_empty() && !cli.quiet {
        eprintln!("no photo has a place yet (places come from the photos' GPS positions)");
    }
    for p in &places {
        println!("{:>6}  {}, {}, {}", p.count, p.city, p.region, p.country);
    }
    Ok(())
}

fn print_status(st: &Status) {
    println!("library: {}", st.library);
    println!("model:   {}", st.model);
    if st.folders.is_empty() {
        println!("folders: none — add one with `shoebox add DIR`");
    } else {
        println!("folders:");
        for f in &st.folders {
            println!("  {}  ({} photos)", f.path, f.photos);
        }
    }
    println!(
        "photos:  {} indexed, {} pending, {} failed, {} captioned",
        st.photos.indexed, st.photos.pending, st.photos.failed, st.photos.captioned
    );
    if st.ocr.read + st.ocr.failed > 0 {
        println!(
            "text:    {} photos read, {} with text, {} failed",
            st.ocr.read, st.ocr.with_text, st.ocr.failed
        );
    }
    println!(
        "index:   {} vectors{}",
        st.index.vectors,
        if st.index.fresh {
            ""
        } else {
            " (out of date: it is repaired on the next search or index)"
        }
    );
    if let Some(w) = &st.watch {
        let how = if w.polled > 0 {
            format!("{} folders natively, {} by polling", w.native, w.polled)
        } else {
            format!("{} folders", w.native)
        };
        println!(
            "watch:   running (pid {}), {how}, {} rescans",
            w.pid, w.rescans
        );
        if let Some(r) = &w.last_rescan {
            println!("         last rescan: {r}");
        }
    }
    if let Some(fails) = &st.failures {
        if fails.is_empty() {
            println!("failures: none");
        } else {
            println!("failures:");
            for f in fails {
                println!("  {}: {}", f.path, f.reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
