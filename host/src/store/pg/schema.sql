-- Runway's store on PostgreSQL, layout 1. The same tables as the redb
-- store, as relations: records are JSON as there (the `json` type, which
-- keeps what a client sent, \u0000 included, where jsonb would refuse it;
-- query it with ->> as usual), run ids are text in the C collation so
-- that they sort by creation time (ULIDs).

CREATE TABLE runway_meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE components (
    digest text PRIMARY KEY,
    wasm   bytea NOT NULL
);

-- slug -> newest version (absent: deleted, or never deployed)
CREATE TABLE workflows (
    slug   text PRIMARY KEY,
    latest integer NOT NULL
);

CREATE TABLE workflow_versions (
    slug    text NOT NULL,
    version integer NOT NULL,
    record  json NOT NULL,
    PRIMARY KEY (slug, version)
);

CREATE TABLE runs (
    id       text COLLATE "C" PRIMARY KEY,
    workflow text NOT NULL,
    status   text NOT NULL,
    parent   text COLLATE "C",
    record   json NOT NULL
);
CREATE INDEX runs_by_workflow ON runs (workflow, id);
CREATE INDEX runs_by_status ON runs (status, id);

-- runs that have not ended; cancel: a cancel was asked for
CREATE TABLE active_runs (
    id     text COLLATE "C" PRIMARY KEY,
    cancel boolean NOT NULL
);

CREATE TABLE events (
    run   text COLLATE "C" NOT NULL,
    seq   bigint NOT NULL,
    event json NOT NULL,
    PRIMARY KEY (run, seq)
);

CREATE TABLE journal (
    run   text COLLATE "C" NOT NULL,
    seq   bigint NOT NULL,
    entry json NOT NULL,
    PRIMARY KEY (run, seq)
);

CREATE TABLE artifacts (
    run  text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    meta json NOT NULL,
    PRIMARY KEY (run, name)
);

CREATE TABLE signals (
    run    text COLLATE "C" NOT NULL,
    seq    bigint NOT NULL,
    signal json NOT NULL,
    PRIMARY KEY (run, seq)
);

CREATE TABLE signal_ids (
    run text COLLATE "C" NOT NULL,
    id  text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (run, id)
);

CREATE TABLE idempotency_keys (
    key text PRIMARY KEY,
    run text COLLATE "C" NOT NULL
);

CREATE TABLE run_keys (
    run text COLLATE "C" NOT NULL,
    key text NOT NULL,
    PRIMARY KEY (run, key)
);

CREATE TABLE children (
    parent text COLLATE "C" NOT NULL,
    child  text COLLATE "C" NOT NULL,
    PRIMARY KEY (parent, child)
);

CREATE TABLE progress (
    run    text COLLATE "C" PRIMARY KEY,
    output json NOT NULL
);

CREATE TABLE model_usage (
    run    text COLLATE "C" PRIMARY KEY,
    totals json NOT NULL
);

CREATE TABLE tree_runs (
    root text COLLATE "C" PRIMARY KEY,
    runs bigint NOT NULL
);

CREATE TABLE cron (
    key     text PRIMARY KEY,
    next_ms bigint NOT NULL
);

CREATE TABLE cron_state (
    key   text PRIMARY KEY,
    state json NOT NULL
);

CREATE TABLE blob_refs (
    digest text PRIMARY KEY,
    refs   bigint NOT NULL
);

-- Several hosts on one database: each registers and heartbeats; a run is
-- driven by the host holding its lease (expiring unless renewed); every
-- write of a run's own goes through with the lease's token only (fencing).
CREATE TABLE hosts (
    id           text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL
);

CREATE TABLE leases (
    run        text COLLATE "C" PRIMARY KEY,
    host       text NOT NULL,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX leases_by_host ON leases (host);

-- Artifact bodies, by sha256, shared by every host. A blob is reclaimed
-- only once no artifact names it and no host's write still counts on it
-- (pinned_until: a write that found it pins it until its record commits).
CREATE TABLE blobs (
    digest       text PRIMARY KEY,
    bytes        bytea NOT NULL,
    pinned_until timestamptz NOT NULL
);
