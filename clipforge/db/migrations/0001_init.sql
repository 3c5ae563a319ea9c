-- ClipForge schema v1. Applied once by `clipforge db migrate` inside one transaction.
-- Every list endpoint pages by (created_at, id) and every such path has a matching index.

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix      text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE videos (
    id            uuid PRIMARY KEY,
    owner_key_id  uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    source_kind   text NOT NULL CHECK (source_kind IN ('url', 'upload', 'file')),
    source_url    text,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'uploading', 'importing', 'transcribing',
                                    'detecting', 'ready', 'failed', 'deleting')),
    error         text,
    original_key  text,
    size_bytes    bigint CHECK (size_bytes >= 0),
    duration_s    double precision CHECK (duration_s >= 0),
    width         integer,
    height        integer,
    fps           double precision,
    has_audio     boolean,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX videos_owner_page_idx ON videos (owner_key_id, created_at DESC, id DESC);
CREATE INDEX videos_owner_status_page_idx ON videos (owner_key_id, status, created_at DESC, id DESC);
CREATE INDEX videos_created_page_idx ON videos (created_at, id);

-- The durable job queue and its record (docs/architecture.md, "The job queue").
CREATE TABLE jobs (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    video_id         uuid REFERENCES videos (id) ON DELETE CASCADE,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    run_after        timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    result           jsonb,
    idempotency_key  text UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK (state <> 'running' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- Claim path: the oldest runnable queued jobs. Partial, so it stays small however long history is.
CREATE INDEX jobs_claim_idx ON jobs (run_after, id) WHERE state = 'queued';
-- Reaper path: running jobs whose lease ran out.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_video_idx ON jobs (video_id, created_at, id);
CREATE INDEX jobs_dead_idx ON jobs (updated_at, id) WHERE state IN ('dead', 'failed');

CREATE TABLE transcripts (
    video_id       uuid PRIMARY KEY REFERENCES videos (id) ON DELETE CASCADE,
    language       text NOT NULL,
    duration_s     double precision NOT NULL,
    text           text NOT NULL,
    model_name     text NOT NULL,
    model_version  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transcript_segments (
    video_id  uuid NOT NULL REFERENCES transcripts (video_id) ON DELETE CASCADE,
    idx       integer NOT NULL,
    start_s   double precision NOT NULL,
    end_s     double precision NOT NULL,
    text      text NOT NULL,
    PRIMARY KEY (video_id, idx),
    CHECK (end_s >= start_s)
);

CREATE TABLE transcript_words (
    video_id     uuid NOT NULL REFERENCES transcripts (video_id) ON DELETE CASCADE,
    idx          integer NOT NULL,
    segment_idx  integer NOT NULL,
    start_s      double precision NOT NULL,
    end_s        double precision NOT NULL,
    word         text NOT NULL,
    probability  real NOT NULL,
    PRIMARY KEY (video_id, idx),
    FOREIGN KEY (video_id, segment_idx) REFERENCES transcript_segments (video_id, idx)
        ON DELETE CASCADE,
    CHECK (end_s >= start_s)
);

CREATE TABLE clips (
    id             uuid PRIMARY KEY,
    video_id       uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    rank           integer NOT NULL CHECK (rank >= 1),
    start_s        double precision NOT NULL,
    end_s          double precision NOT NULL,
    score          double precision NOT NULL CHECK (score BETWEEN 0 AND 100),
    sub_scores     jsonb NOT NULL DEFAULT '{}'::jsonb,
    reason         text NOT NULL DEFAULT '',
    title          text NOT NULL DEFAULT '',
    hook           text NOT NULL DEFAULT '',
    model_name     text NOT NULL,
    model_version  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (video_id, rank),
    CHECK (end_s > start_s)
);
CREATE INDEX clips_video_page_idx ON clips (video_id, created_at, id);

CREATE TABLE exports (
    id             uuid PRIMARY KEY,
    clip_id        uuid NOT NULL REFERENCES clips (id) ON DELETE CASCADE,
    aspect_ratio   text NOT NULL CHECK (aspect_ratio IN ('9:16', '1:1', '16:9')),
    caption_style  text NOT NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'rendering', 'ready', 'failed')),
    object_key     text,
    thumbnail_key  text,
    duration_s     double precision,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exports_clip_page_idx ON exports (clip_id, created_at, id);

CREATE TABLE webhooks (
    id            uuid PRIMARY KEY,
    owner_key_id  uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    url           text NOT NULL,
    secret        text NOT NULL,
    events        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner_page_idx ON webhooks (owner_key_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id             uuid PRIMARY KEY,
    webhook_id     uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event          text NOT NULL,
    payload        jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts       integer NOT NULL DEFAULT 0,
    response_code  integer,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    delivered_at   timestamptz
);
CREATE INDEX webhook_deliveries_page_idx ON webhook_deliveries (webhook_id, created_at, id);

-- Replays of POST requests that carried an Idempotency-Key header.
CREATE TABLE idempotency_keys (
    api_key_id      uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    response_status integer NOT NULL,
    response_body   jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
