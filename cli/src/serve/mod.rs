//! `relevance serve`: a local web page that explains a model's predictions live — draw a
//! digit or drop an image, compare rules side by side, change their parameters — and the
//! JSON API it uses (README, "The explanation page"). axum on tokio; the page, its script and
//! style are compiled into the binary (no CDN, works offline).
//!
//! Safety: the server reads the model files named on the command line once, at start, and
//! no other file; it writes none. Every request is checked (size, pixels, JSON, methods,
//! classes, parameters) and answered with a 4xx and a sentence when wrong; a computation
//! runs on the blocking pool, at most `2 × cores` at once, and is cut at `--timeout`.

mod api;
mod compute;
mod drawing;
mod model;
mod request;

use crate::input::{parse_preprocess, Preprocess};
use crate::{parse_shape, Failure, ModelArgs, Shape};
use clap::Args;
use model::ServedModel;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `relevance serve`'s options.
#[derive(Args)]
pub struct ServeArgs {
    /// Models to serve: .onnx files, or .safetensors files with their .json architecture
    /// beside them. Default: the bundled digits model.
    #[arg(value_name = "MODEL")]
    pub models: Vec<PathBuf>,
    /// Image preprocessing per model (imagenet, mnist, none, mean=..,std=..): one for all
    /// models, or one per model in order.
    #[arg(long, value_name = "PRESET", value_parser = parse_preprocess)]
    pub preprocess: Vec<Preprocess>,
    /// Class names (one per line) per model: one file for all models, or one per model.
    #[arg(long, value_name = "FILE")]
    pub labels: Vec<PathBuf>,
    /// The per-sample input shape, for ONNX models whose height and width are symbolic.
    #[arg(long, value_name = "C,H,W", value_parser = parse_shape)]
    pub input_shape: Option<Shape>,
    /// The address to listen on. The default answers this machine only; another address
    /// (e.g. 0.0.0.0) opens the page to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port (0: any free port; the URL printed says which).
    #[arg(long, default_value = "8080")]
    pub port: u16,
    /// A request that computes longer than this many seconds is cut off (503).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// The largest request body (an uploaded image with its JSON), in megabytes.
    #[arg(long, value_name = "MB", default_value = "16", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_upload: u64,
}

/// The server's shared state.
pub struct State {
    pub models: Vec<ServedModel>,
    pub timeout: Duration,
    pub max_body: usize,
    /// Computations running at once.
    pub slots: tokio::sync::Semaphore,
}

fn per_model<T: Clone>(values: &[T], count: usize, flag: &str) -> Result<Vec<Option<T>>, Failure> {
    match values.len() {
        0 => Ok(vec![None; count]),
        1 => Ok(vec![Some(values[0].clone()); count]),
        n if n == count => Ok(values.iter().cloned().map(Some).collect()),
        n => Err(Failure::Usage(format!(
            "{flag} was given {n} times for {count} models: give it once for all, or once per model"
        ))),
    }
}

fn load_models(args: &ServeArgs) -> Result<Vec<ServedModel>, Failure> {
    if args.models.is_empty() {
        if !args.preprocess.is_empty() || !args.labels.is_empty() {
            eprintln!("note: --preprocess and --labels apply to models given on the command line; the bundled digits model has its own");
        }
        return Ok(vec![ServedModel::bundled_digits()?]);
    }
    let pre = per_model(&args.preprocess, args.models.len(), "--preprocess")?;
    let labels = per_model(&args.labels, args.models.len(), "--labels")?;
    args.models
        .iter()
        .zip(pre.into_iter().zip(labels))
        .map(|(path, (pre, labels))| {
            let margs = ModelArgs {
                model: path.clone(),
                arch: None,
                input_shape: args.input_shape.clone(),
                output: None,
                fix: Vec::new(),
            };
            ServedModel::load(&margs, pre.unwrap_or_else(Preprocess::none), labels.as_ref())
        })
        .collect()
}

/// Runs the server until Ctrl-C.
pub fn serve(args: ServeArgs) -> Result<(), Failure> {
    let models = load_models(&args)?;
    for m in &models {
        for note in &m.notes {
            eprintln!("note: {}: {note}", m.name);
        }
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let state = Arc::new(State {
        models,
        timeout: Duration::from_secs(args.timeout),
        max_body: (args.max_upload as usize) << 20,
        slots: tokio::sync::Semaphore::new(2 * cores),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Run(format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Failure::Run(format!(
                "cannot listen on {addr}: {e}{}",
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    "; choose another port with --port (0: any free port)"
                } else {
                    ""
                }
            ))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| Failure::Run(format!("cannot read the server's address: {e}")))?;
        if !args.host.is_loopback() {
            eprintln!(
                "warning: listening on {} opens the page and its API to other machines; anyone who reaches it can run explanations",
                args.host
            );
        }
        let names: Vec<&str> = state.models.iter().map(|m| m.name.as_str()).collect();
        let shown = if local.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), local.port())
        } else {
            local
        };
        println!("relevance serve: http://{shown}/ ({}; Ctrl-C stops)", names.join(", "));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Failure::Run(format!("the server stopped: {e}")))
    })
}
