//! `GET /v1/openapi.json`: the API description, generated from the
//! handlers' annotations so it cannot drift from the code.

use super::{artifacts, cron, events, hooks, ops, runs, workflows};
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Runway", description = "Durable, sandboxed WebAssembly workflows over HTTP. Errors are `{\"error\":{\"code\",\"message\"}}`."),
    paths(
        workflows::deploy, workflows::list, workflows::get, workflows::delete,
        cron::list, cron::pause, cron::resume, cron::fire,
        runs::start, runs::list, runs::get, runs::cancel, runs::signal,
        events::page, events::stream,
        artifacts::list, artifacts::download,
        hooks::receive,
        ops::healthz, ops::readyz, ops::metrics, ops::models,
        spec,
    ),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops",
    responses((status = 200, content_type = "application/json", description = "OpenAPI 3.1")))]
pub async fn spec() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
