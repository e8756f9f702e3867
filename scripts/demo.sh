#!/usr/bin/env bash
# The quickstart: builds the host and the examples, runs `hello` on the
# embedded default (redb in ./.runway) and shows its output and events.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "==> building runway (release) and the example workflows"
cargo build --quiet --release -p runway
./scripts/build-examples.sh
runway=target/release/runway
guests=target/guest/wasm32-wasip2/guest

echo "==> runway exec hello.wasm --input '{\"name\":\"Ada\"}'"
$runway exec "$guests/hello.wasm" --manifest examples/hello/runway.toml --input '{"name":"Ada"}'

run_id=$($runway runs --workflow hello --limit 1 --json | sed -n 's/.*"run_id": *"\([^"]*\)".*/\1/p' | head -n 1)
echo "==> runway events $run_id"
$runway events "$run_id"

echo "==> runway exec report.wasm (reads a secret, writes an artifact, emits progress)"
RUNWAY_SECRET_REPORT_TOKEN=demo-token $runway exec "$guests/report.wasm" --manifest examples/report/runway.toml \
  --input '{"title":"Weekly","sections":[{"heading":"Wins","body":"Shipped."},{"heading":"Risks"}]}'
run_id=$($runway runs --workflow report --limit 1 --json | sed -n 's/.*"run_id": *"\([^"]*\)".*/\1/p' | head -n 1)
$runway events "$run_id"

echo "==> durable: fanout starts three child runs of hello and joins them"
$runway deploy "$guests/fanout.wasm" --manifest examples/fanout/runway.toml
$runway run fanout --input '{"names":["Ada","Bob","Cy"]}'

echo "==> durable: approval waits for a signal (the run parks; the command returns)"
$runway deploy "$guests/approval.wasm" --manifest examples/approval/runway.toml
$runway run approval --input '{"request":"ship it"}' || true
run_id=$($runway runs --workflow approval --status waiting-signal --limit 1 --json | sed -n 's/.*"run_id": *"\([^"]*\)".*/\1/p' | head -n 1)
echo "==> runway signal $run_id approve --data '{\"by\":\"ada\"}'"
$runway signal "$run_id" approve --data '{"by":"ada"}'

echo "==> runway workflows"
$runway workflows
echo "==> data is in ./.runway; try: $runway runs"
