//! `GET /v1/openapi.json`: the API description, generated from the
//! handlers' annotations so it cannot drift from the code.

use super::{
    approvals, artifacts, audit, cron, events, feed, hooks, ops, runs, timeline, workflows,
};
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Runway", description = "Durable, sandboxed WebAssembly workflows over HTTP. Errors are `{\"error\":{\"code\",\"message\"}}`."),
    paths(
        workflows::deploy, workflows::list, workflows::get, workflows::delete,
        cron::list, cron::pause, cron::resume, cron::fire,
        runs::start, runs::list, runs::counts, feed::stream, runs::get, runs::cancel, runs::signal,
        runs::rerun,
        runs::reset,
        runs::delete, runs::purge,
        events::page, events::stream, timeline::get,
        approvals::list, approvals::decide,
        artifacts::list, artifacts::download,
        hooks::receive,
        ops::healthz, ops::readyz, ops::metrics, ops::models, ops::backup, ops::whoami, audit::page,
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

/// This document, with a path of its own for each deployed workflow whose
/// manifest declares an input or output schema.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops",
    responses((status = 200, content_type = "application/json", description = "OpenAPI 3.1")))]
pub async fn spec(state: super::AppStateRef) -> Json<serde_json::Value> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let workflows = state.host.workflows().unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for wf in workflows {
            let Ok(manifest) = crate::manifest::Manifest::parse(&wf.manifest_toml) else {
                continue;
            };
            if manifest.input.is_none() && manifest.output.is_none() {
                continue;
            }
            let any = serde_json::json!({});
            let input = manifest.input.as_ref().map_or(&any, |c| &c.schema);
            let output = manifest.output.as_ref().map_or(&any, |c| &c.schema);
            paths.insert(
                format!("/v1/workflows/{}/runs", wf.slug),
                workflow_path(&wf.slug, input, output),
            );
        }
    }
    Json(doc)
}

/// `POST /v1/workflows/<slug>/runs` with the workflow's own schemas.
fn workflow_path(
    slug: &str,
    input: &serde_json::Value,
    output: &serde_json::Value,
) -> serde_json::Value {
    let envelope = serde_json::json!({ "$ref": "#/components/schemas/ErrorEnvelope" });
    serde_json::json!({
        "post": {
            "tags": ["runs"],
            "operationId": format!("start_{}", slug.replace('-', "_")),
            "summary": format!("Starts a run of {slug}; its input is checked against the schema first"),
            "parameters": [{
                "name": "wait", "in": "query", "required": false,
                "schema": { "type": "number", "minimum": 0, "maximum": 300 }
            }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": input } } },
            "responses": {
                "200": {
                    "description": "The ended run; its `output` follows the output schema",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "output": output }
                    } } }
                },
                "202": { "description": "The run, queued or running; poll its Location" },
                "422": {
                    "description": "INVALID_INPUT: the input does not follow the schema (the message has the path); no run was created",
                    "content": { "application/json": { "schema": envelope } }
                }
            },
            "security": [{ "bearer": [] }]
        }
    })
}
