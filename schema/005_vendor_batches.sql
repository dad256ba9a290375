-- imgbatch schema, version 5: vendor batches (providers in "mode": "batch", see README
-- "Batch mode").
--
-- A vendor batch is one file of requests submitted to a provider's batch API (OpenAI Batch,
-- Gemini Batch Mode). Its row and the requests it carries are recorded BEFORE anything is
-- uploaded or created at the vendor, under a chunk name that is also sent as the vendor
-- batch's metadata: a daemon that crashed between creating the vendor batch and recording its
-- id finds it again by that name and adopts it instead of submitting the requests twice.
-- Written by imgbatch only; read it freely.

-- The identity of this database, named in the metadata of every vendor batch it creates (so
-- that two databases sharing one API key never adopt each other's batches). One row.
CREATE TABLE database_instance (
    id TEXT NOT NULL                             -- 16 hex digits, made when the table is made
);
INSERT INTO database_instance(id) VALUES (lower(hex(randomblob(8))));

CREATE TABLE vendor_batches (
    id             INTEGER PRIMARY KEY,          -- local id
    provider       TEXT    NOT NULL,             -- provider name from the config
    chunk          TEXT    NOT NULL UNIQUE,      -- '<database instance id>-<id>': the vendor
                                                 -- batch's metadata imgbatch_chunk
    state          TEXT    NOT NULL DEFAULT 'preparing'
                   CHECK (state IN ('preparing', 'uploaded', 'submitted', 'applying', 'done',
                                    'abandoned')),
                                                 -- preparing: requests recorded, nothing
                                                 -- created yet; uploaded: input file at the
                                                 -- vendor; submitted: the vendor batch exists
                                                 -- (vendor_id); applying: it ended, its results
                                                 -- are being recorded; done: every line was
                                                 -- recorded or returned to the queue;
                                                 -- abandoned: never created, requests returned
    vendor_id      TEXT,                         -- the vendor's batch id ('batch_...' or
                                                 -- 'batches/...'), NULL until created
    vendor_status  TEXT,                         -- the vendor's last status, as it says it
                                                 -- (validating, in_progress, completed,
                                                 -- JOB_STATE_RUNNING, ...)
    requests       INTEGER NOT NULL DEFAULT 0,   -- lines in the batch
    completed      INTEGER NOT NULL DEFAULT 0,   -- lines the vendor counts as completed
    failed         INTEGER NOT NULL DEFAULT 0,   -- lines the vendor counts as failed
    applied        INTEGER NOT NULL DEFAULT 0,   -- lines recorded here (results or returns)
    bytes          INTEGER NOT NULL DEFAULT 0,   -- size of the input file
    input_file_id  TEXT,                         -- the uploaded input file (file mode)
    output_file_id TEXT,                         -- the vendor's output file, once known
    error_file_id  TEXT,                         -- the vendor's error file, once known
    message        TEXT,                         -- why it failed, expired or was abandoned
    created_at     REAL    NOT NULL,             -- when the row was recorded
    updated_at     REAL    NOT NULL,             -- last state change
    finished_at    REAL                          -- when it became done or abandoned
);
CREATE INDEX vendor_batches_open ON vendor_batches(provider, state)
    WHERE state NOT IN ('done', 'abandoned');

-- Which request went, at which attempt, into which vendor batch. The line's custom_id is
-- 'r<request id>-a<attempt_no>': a result is recorded only while the request still runs at
-- that attempt, so a line is never recorded twice.
CREATE TABLE vendor_batch_requests (
    vendor_batch_id INTEGER NOT NULL REFERENCES vendor_batches(id) ON DELETE CASCADE,
    request_id      INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    attempt_no      INTEGER NOT NULL,            -- requests.attempt_no of the line
    PRIMARY KEY (vendor_batch_id, request_id)
) WITHOUT ROWID;
CREATE INDEX vendor_batch_requests_attempt ON vendor_batch_requests(request_id, attempt_no);
