//! The command-line grammar (clap derive). Names and flags follow the SPEC's contract.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// margin: exact, fast metric-learning losses and distances on CPU and GPU.
#[derive(Debug, Parser)]
#[command(name = "margin", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Computes a loss and its gradient on .npy inputs; prints one JSON object.
    Loss(LossCmd),
    /// Lists every backend: available, or why not.
    Devices(DevicesCmd),
    /// Trains a linear projection of the digits data and reports Recall@1 before and after.
    Demo(DemoCmd),
    /// Times a loss (forward plus backward) or the pairwise matrix on random inputs; prints JSON.
    Bench(BenchCmd),
    /// Retrieval metrics (PML's AccuracyCalculator) of query embeddings against a reference set.
    Eval(EvalCmd),
    /// Writes the distance (or similarity) matrix of .npy rows as an f32 .npy; prints JSON.
    Pairwise(PairwiseCmd),
}

/// Which backend runs the computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CUDA if a GPU is there, else a hardware wgpu adapter, else the fast CPU backend.
    Auto,
    /// The fast multi-threaded CPU backend.
    Cpu,
    /// The float64 reference (slow; the oracle).
    Reference,
    /// WGSL compute shaders on wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// CUDA through cudarc and NVRTC.
    Cuda,
}

/// The loss parameters shared by `loss` and `bench`. Unset flags keep the SPEC's defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct LossFlags {
    /// euclidean | squared-euclidean | cosine | dot
    #[arg(long)]
    pub distance: Option<String>,
    /// L2-normalize rows first.
    #[arg(long, conflicts_with = "no_normalize")]
    pub normalize: bool,
    /// Do not normalize rows.
    #[arg(long)]
    pub no_normalize: bool,
    /// Margin (triplet, triplet-center, quadruplet α1, circle, proxy-anchor δ, cosface).
    #[arg(long, allow_negative_numbers = true)]
    pub margin: Option<f64>,
    /// Second margin (quadruplet α2).
    #[arg(long, allow_negative_numbers = true)]
    pub margin2: Option<f64>,
    /// Positive margin (contrastive, lifted-structure).
    #[arg(long, allow_negative_numbers = true)]
    pub pos_margin: Option<f64>,
    /// Negative margin (contrastive, lifted-structure).
    #[arg(long, allow_negative_numbers = true)]
    pub neg_margin: Option<f64>,
    /// Softplus instead of relu (triplet).
    #[arg(long)]
    pub smooth: bool,
    /// all | hard | semihard (triplet); all | hard (quadruplet).
    #[arg(long)]
    pub mining: Option<String>,
    /// Positive-pair weight α (multi-similarity); the scale α (proxy-anchor).
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f64>,
    /// Negative-pair weight β (multi-similarity).
    #[arg(long, allow_negative_numbers = true)]
    pub beta: Option<f64>,
    /// Exponent shift (multi-similarity).
    #[arg(long, allow_negative_numbers = true)]
    pub base: Option<f64>,
    /// Scale γ (circle).
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// Temperature τ (nt-xent, supcon, normalized-softmax).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Logit scale (proxy-nca's softmax scale, cosface's s).
    #[arg(long, allow_negative_numbers = true)]
    pub scale: Option<f64>,
}

/// `--stream-budget-mib`, shared by `loss` and `bench`.
#[derive(Debug, Args)]
pub struct BudgetFlag {
    /// Caps, in MiB, the chunk buffers of the GPU backends' streamed passes (default 1024 on
    /// cuda, 256 on wgpu; past it the batch-all quadruplet runs its last pass in place in chunks
    /// of rows) or the cpu backend's working memory (default 1024). Bounds memory; the result
    /// does not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_budget_mib: Option<u64>,
}

#[derive(Debug, Args)]
pub struct LossCmd {
    /// contrastive | triplet | triplet-center | n-pair | quadruplet | lifted-structure |
    /// multi-similarity | circle | nt-xent | supcon | generalized-lifted-structure | proxy-anchor |
    /// proxy-nca | normalized-softmax | cosface
    pub loss: String,
    /// N x D embeddings (.npy, float32 or float64).
    #[arg(long)]
    pub embeddings: PathBuf,
    /// N labels (.npy, any integer dtype).
    #[arg(long)]
    pub labels: PathBuf,
    /// K x D centers (.npy): triplet-center's centers, the proxies of proxy-anchor and proxy-nca
    /// (`--proxies`), the class weights of normalized-softmax and cosface (PML's `W`, transposed).
    #[arg(long, visible_alias = "proxies")]
    pub centers: Option<PathBuf>,
    /// M x D reference embeddings (.npy): anchors come from the batch, positives and negatives
    /// from these (PML's `ref_emb`); every loss but n-pair and the losses with centers.
    #[arg(long, requires = "ref_labels")]
    pub ref_embeddings: Option<PathBuf>,
    /// M reference labels (.npy, any integer dtype).
    #[arg(long, requires = "ref_embeddings")]
    pub ref_labels: Option<PathBuf>,
    /// N integers (.npy): the reference row holding each batch row's own copy, which is then not
    /// its positive; -1 for none (a cross-batch memory's slots).
    #[arg(long, requires = "ref_embeddings")]
    pub ref_self_index: Option<PathBuf>,
    #[command(flatten)]
    pub flags: LossFlags,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    #[command(flatten)]
    pub budget: BudgetFlag,
    /// Where to write dL/dX (float32 .npy).
    #[arg(long)]
    pub grad_out: Option<PathBuf>,
    /// Where to write dL/dC (float32 .npy), for the losses with centers
    /// (`--proxy-grad-out`).
    #[arg(long, visible_alias = "proxy-grad-out")]
    pub center_grad_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DevicesCmd {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoCmd {
    /// The loss to train with: contrastive | triplet | triplet-center | n-pair | quadruplet |
    /// lifted-structure | multi-similarity | circle | nt-xent | supcon |
    /// generalized-lifted-structure | proxy-anchor | proxy-nca | normalized-softmax | cosface.
    #[arg(long, default_value = "triplet")]
    pub loss: String,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// Training steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Output dimension of the projection.
    #[arg(long, default_value_t = 16)]
    pub dim: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Random seed (initial projection and batches).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory holding images.npy and labels.npy (default: the copy embedded in the binary).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Train against a cross-batch memory of this many past embeddings (PML's
    /// CrossBatchMemory; every loss but n-pair and the losses with centers). 0: off.
    #[arg(long, default_value_t = 0)]
    pub memory: usize,
    /// Print one JSON object (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Where to write the before/after picture of the held-out embeddings (PNG).
    #[arg(long, default_value = "margin-demo.png", conflicts_with = "no_png")]
    pub png: PathBuf,
    /// Do not write the picture.
    #[arg(long)]
    pub no_png: bool,
}

#[derive(Debug, Args)]
pub struct BenchCmd {
    /// A loss name, `pairwise` for the distance matrix alone, or `knn` for the k nearest
    /// neighbours of every row among the others (`--k`).
    pub what: String,
    #[arg(long)]
    pub n: usize,
    #[arg(long)]
    pub d: usize,
    /// Number of classes for the random labels (default min(N, 256)).
    #[arg(long)]
    pub classes: Option<usize>,
    #[command(flatten)]
    pub flags: LossFlags,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    #[command(flatten)]
    pub budget: BudgetFlag,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Random seed of the inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With a loss: a random reference set of this many rows (labels drawn from the same
    /// classes), as a cross-batch memory would hold.
    #[arg(long)]
    pub ref_m: Option<usize>,
    /// Neighbours per row for `knn`.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Time the device path alone: inputs uploaded and outputs allocated once, each run ended
    /// by a device synchronize, no host copies (what a trainer whose embeddings live on the
    /// GPU pays). Without it each run is the host call, copies included.
    #[arg(long)]
    pub on_device: bool,
}

/// The metric of `eval` and `pairwise`: euclidean without normalization unless told otherwise
/// (PML's default k-NN and `torch.cdist` are plain L2).
#[derive(Debug, Clone, Default, Args)]
pub struct MetricFlags {
    /// euclidean | squared-euclidean | cosine | dot (default euclidean).
    #[arg(long)]
    pub distance: Option<String>,
    /// L2-normalize rows first (cosine always does).
    #[arg(long, conflicts_with = "no_normalize")]
    pub normalize: bool,
    /// Do not normalize rows (the default).
    #[arg(long)]
    pub no_normalize: bool,
}

#[derive(Debug, Args)]
pub struct PairwiseCmd {
    /// N x D rows (.npy, float32 or float64).
    #[arg(long)]
    pub embeddings: PathBuf,
    /// M x D reference rows (.npy); default: the rows themselves (an N x N matrix).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Where to write the N x M matrix (.npy, float32).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub metric: MetricFlags,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
}

#[derive(Debug, Args)]
pub struct EvalCmd {
    /// Nq x D query embeddings (.npy, float32 or float64).
    #[arg(long)]
    pub query: PathBuf,
    /// Nq query labels (.npy, any integer dtype).
    #[arg(long)]
    pub query_labels: PathBuf,
    /// M x D reference embeddings (.npy); default: the queries themselves, each excluding itself.
    #[arg(long, requires = "reference_labels")]
    pub reference: Option<PathBuf>,
    /// M reference labels (.npy, any integer dtype).
    #[arg(long, requires = "reference")]
    pub reference_labels: Option<PathBuf>,
    #[command(flatten)]
    pub metric: MetricFlags,
    /// Neighbours per query, as PML's `AccuracyCalculator(k=...)`: a number, `max-bin-count`, or
    /// `all` (the default: the full ranking). With a number, the GPU backends use a fused
    /// distance + top-k kernel.
    #[arg(long, default_value = "all")]
    pub k: String,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
}
