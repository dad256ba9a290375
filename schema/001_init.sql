-- imgbatch schema, version 1.
--
-- The jobs table is a public interface: any SQLite client may
--   INSERT INTO jobs(prompt, model, n, params) VALUES (...);
-- and the daemon validates the row (state 'pending' -> 'queued' or 'rejected'), plans it
-- into requests and runs it. Every other table is written by imgbatch only; read them freely.
-- Times are Unix seconds (REAL, UTC) unless a column says otherwise.

-- A named group of jobs: one `imgbatch enqueue` call by default. Rows inserted by SQL
-- without a batch_id are put in the batch named 'sql' when the daemon plans them.
CREATE TABLE batches (
    id         INTEGER PRIMARY KEY,          -- batch id
    name       TEXT    NOT NULL UNIQUE,      -- batch name (the --batch option)
    created_at REAL    NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)  -- when the batch was created
);

-- One prompt, one model, parameters, and n images wanted.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,         -- job id (used in file names when there is no key)
    batch_id    INTEGER REFERENCES batches(id),  -- the batch; NULL on insert means 'sql'
    key         TEXT UNIQUE,                 -- optional idempotency key (or OpenAI Batch custom_id);
                                             -- a key already present is never enqueued twice
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'queued', 'running', 'succeeded', 'failed',
                                 'blocked', 'cancelled', 'rejected')),
                                             -- insert with 'pending' (the default); see README
    prompt      TEXT    NOT NULL,            -- the text prompt
    model       TEXT    NOT NULL,            -- model id, e.g. 'gpt-image-1', 'imagen-4.0-generate-001'
    provider    TEXT,                        -- provider name from the config; NULL: the first
                                             -- provider serving the model (filled in at planning).
                                             -- The provider that serves the job now: a vendor
                                             -- batch line retried through batch_retry_direct
                                             -- moves the job (and the request) to that direct
                                             -- provider; attempts.provider keeps who was called
    n           INTEGER NOT NULL DEFAULT 1,  -- images wanted (>= 1)
    params      TEXT    NOT NULL DEFAULT '{}',  -- JSON object of generation parameters:
                                             -- size, quality, style, background, aspect_ratio,
                                             -- image_size, person_generation, ... plus provider-
                                             -- native fields passed through as they are
    metadata    TEXT,                        -- JSON object kept for the caller, copied to export
    priority    INTEGER NOT NULL DEFAULT 0,  -- higher runs first
    images_done INTEGER NOT NULL DEFAULT 0,  -- images written so far
    error       TEXT,                        -- why the job was rejected, failed or blocked
    created_at  REAL    NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),  -- when the row was inserted
    updated_at  REAL    NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),  -- last state change
    finished_at REAL                         -- when the job reached a final state
);
-- Pending rows for the planner; status counts per state (covering: n and images_done are
-- summed from the index alone, so status stays fast on millions of jobs).
CREATE INDEX jobs_pending ON jobs(id) WHERE state = 'pending';
CREATE INDEX jobs_batch_state ON jobs(batch_id, state, n, images_done);
CREATE INDEX jobs_state ON jobs(state, n, images_done);

-- One HTTP call asking for up to k images: a job of n images is split into ceil(n/k)
-- requests. Top-ups for partial results reuse the same request row.
CREATE TABLE requests (
    id            INTEGER PRIMARY KEY,       -- request id
    job_id        INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,  -- owning job
    seq           INTEGER NOT NULL,          -- 0-based position within the job
    first_index   INTEGER NOT NULL,          -- output index of this request's first image
    provider      TEXT    NOT NULL,          -- provider that serves it (now: see jobs.provider)
    n             INTEGER NOT NULL,          -- images this request must produce
    images_done   INTEGER NOT NULL DEFAULT 0,  -- images written so far
    state         TEXT    NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'blocked',
                                   'cancelled')),
    priority      INTEGER NOT NULL DEFAULT 0,  -- copied from the job
    attempts      INTEGER NOT NULL DEFAULT 0,  -- attempts counted against retry.max_attempts
    rate_limited  INTEGER NOT NULL DEFAULT 0,  -- 429 answers received (bounded separately)
    moderation    INTEGER NOT NULL DEFAULT 0,  -- moderation retries and top-ups used
    attempt_no    INTEGER NOT NULL DEFAULT 0,  -- attempts started; a completion must match it
    not_before    REAL    NOT NULL DEFAULT 0,  -- not claimed before this time (backoff)
    lease_owner   TEXT,                      -- daemon instance holding the lease (per boot)
    lease_until   REAL,                      -- the lease expires then; expired leases return
    last_error_class  TEXT,                  -- class of the last error (see README)
    last_error_code   TEXT,                  -- provider's error code, e.g. 'moderation_blocked'
    last_http_status  INTEGER,               -- HTTP status of the last error, 0 if none
    last_error_message TEXT,                 -- provider's message for the last error
    UNIQUE (job_id, seq)
);
-- The claim walks requests_claim in claim order (priority, then age): its cost does not grow
-- with the queue. not_before and state make it covering (rows in backoff are skipped, and
-- queued counts are read, without touching the table). Expired leases are found through
-- requests_running.
CREATE INDEX requests_claim ON requests(provider, priority DESC, id, not_before, state)
    WHERE state = 'queued';
CREATE INDEX requests_running ON requests(lease_until) WHERE state = 'running';
-- (A job's requests are found through the UNIQUE (job_id, seq) index.)

-- One try of a request, with its outcome.
CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,        -- attempt id
    request_id   INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,  -- the request
    job_id       INTEGER NOT NULL,           -- the job (denormalised for queries)
    attempt_no   INTEGER NOT NULL,           -- requests.attempt_no when it started
    provider     TEXT    NOT NULL,           -- provider called
    started_at   REAL    NOT NULL,           -- when the HTTP call started
    finished_at  REAL    NOT NULL,           -- when the outcome was known
    duration_ms  INTEGER NOT NULL,           -- wall time of the call
    outcome      TEXT    NOT NULL,           -- 'ok', 'partial', 'error' or 'returned' (given back
                                             -- at shutdown without using an attempt)
    images       INTEGER NOT NULL DEFAULT 0, -- images this attempt produced
    error_class  TEXT,                       -- timeout, network, rate_limited, server, moderation,
                                             -- partial, invalid_request, auth, quota,
                                             -- bad_response, local
    error_code   TEXT,                       -- provider's error code
    http_status  INTEGER,                    -- HTTP status (0 when no response)
    message      TEXT,                       -- provider's or the client's message
    usage        TEXT                        -- provider's usage object (JSON), for cost
);
CREATE INDEX attempts_request ON attempts(request_id);
CREATE INDEX attempts_job ON attempts(job_id);

-- One image file, recorded in the same transaction that completes its request.
CREATE TABLE outputs (
    id             INTEGER PRIMARY KEY,      -- output id
    job_id         INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,  -- the job
    request_id     INTEGER NOT NULL,         -- the request that produced it
    idx            INTEGER NOT NULL,         -- image index within the job (file name suffix)
    path           TEXT    NOT NULL,         -- file path as written
    bytes          INTEGER NOT NULL,         -- file size
    sha256         TEXT    NOT NULL,         -- hex SHA-256 of the file
    mime           TEXT    NOT NULL,         -- image/png, image/jpeg or image/webp (from magic bytes)
    width          INTEGER,                  -- pixels, when the header tells
    height         INTEGER,                  -- pixels, when the header tells
    revised_prompt TEXT,                     -- the provider's revised prompt, if any
    created_at     REAL    NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),  -- when it was recorded
    UNIQUE (job_id, idx)
);
CREATE INDEX outputs_created ON outputs(created_at);

-- Per-provider state that outlives a daemon: paused by auth/quota errors or by the user.
CREATE TABLE provider_state (
    name        TEXT PRIMARY KEY,            -- provider name from the config
    paused      INTEGER NOT NULL DEFAULT 0,  -- 1: no requests are dispatched to it
    reason      TEXT,                        -- why: 'user', 'auth: ...', 'quota: ...'
    paused_at   REAL,                        -- when it was paused
    probe_at    REAL,                        -- when the daemon tries it again (auto pauses only)
    updated_at  REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)  -- last change
);
