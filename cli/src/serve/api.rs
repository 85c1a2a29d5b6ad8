//! The HTTP side: routes, the page's files, JSON in and out, and the status codes of
//! failures (400 for a bad request, 404 unknown path, 413 too large, 422 input the model
//! cannot take, 503 cut by the timeout), each with `{"error": "<sentence>"}`.

use super::compute::{self, Failed};
use super::request::{BadRequest, ExplainRequest, PredictRequest};
use super::State;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State as Shared};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use relevance::MethodName;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// The routes.
pub fn router(state: Arc<State>) -> Router {
    let limit = state.max_body;
    Router::new()
        .route("/", get(|| async { page(INDEX, "text/html; charset=utf-8") }))
        .route(
            "/app.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/models", get(models))
        .route("/api/methods", get(methods))
        .route("/api/predict", post(predict))
        .route("/api/explain", post(explain))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such page; the API is /api/models, /api/methods, /api/predict and /api/explain".into(),
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The models with what the page needs to know of them.
async fn models(Shared(state): Shared<Arc<State>>) -> Response {
    let list: Vec<Value> = state
        .models
        .iter()
        .enumerate()
        .map(|(id, m)| {
            let nodes: Vec<Value> = m
                .net
                .nodes()
                .iter()
                .map(|n| json!({ "name": n.name(), "category": format!("{:?}", n.category()) }))
                .collect();
            json!({
                "id": id,
                "name": m.name,
                "input_shape": m.input_shape(),
                "classes": m.classes(),
                "labels": m.labels,
                "preprocess": m.preprocess.name(),
                "drawable": m.drawable(),
                "images": m.takes_images(),
                "bounds": m.bounds.is_some(),
                "mean_baseline": if m.mean_input.is_some() { "the mean of the test digits" } else { "the input's mean colour" },
                "samples": m.samples.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
                "nodes": nodes,
            })
        })
        .collect();
    Json(json!({ "models": list })).into_response()
}

/// Every method name with what it computes and when to use it (`relevance rules`).
async fn methods() -> Response {
    let list: Vec<Value> = MethodName::all()
        .iter()
        .map(|i| json!({ "name": i.name, "what": i.what, "when": i.when, "composite": i.composite }))
        .collect();
    Json(json!({ "methods": list })).into_response()
}

/// A JSON body read with the server's messages.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<T, Box<Response>> {
    let bytes = body.map_err(|e| {
        Box::new(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request is larger than the limit of {} MB (--max-upload)",
                    limit >> 20
                ),
            )
        } else {
            error(e.status(), format!("cannot read the request: {e}"))
        })
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the request is not the JSON expected: {e}"),
        ))
    })
}

/// Runs `work` on the blocking pool, in a computation slot, cut at the timeout.
async fn run<T, W>(state: Arc<State>, work: W) -> Response
where
    T: serde::Serialize + Send + 'static,
    W: FnOnce(&State) -> Result<T, Failed> + Send + 'static,
{
    let timeout = state.timeout;
    let job = async move {
        let Ok(_slot) = state.slots.acquire().await else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping".into());
        };
        let shared = state.clone();
        match tokio::task::spawn_blocking(move || work(&shared)).await {
            Ok(Ok(v)) => Json(v).into_response(),
            Ok(Err(Failed::Bad(BadRequest(m)))) => error(StatusCode::BAD_REQUEST, m),
            Ok(Err(Failed::Unprocessable(m))) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the computation failed: {e}"),
            ),
        }
    };
    match tokio::time::timeout(timeout, job).await {
        Ok(r) => r,
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {} s (--timeout) and was cut off",
                timeout.as_secs()
            ),
        ),
    }
}

async fn predict(Shared(state): Shared<Arc<State>>, body: Result<Bytes, BytesRejection>) -> Response {
    let req: PredictRequest = match parse(body, state.max_body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    run(state, move |s| compute::predict(&s.models, &req)).await
}

async fn explain(Shared(state): Shared<Arc<State>>, body: Result<Bytes, BytesRejection>) -> Response {
    let req: ExplainRequest = match parse(body, state.max_body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    run(state, move |s| compute::explain(&s.models, &req)).await
}
