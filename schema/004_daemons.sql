-- imgbatch schema, version 4: the daemons that run on this database.
--
-- One row per `imgbatch run` (per boot of the daemon). Its heartbeat and its lock file
-- ({database}.daemons/{tag}.lock, held with flock while the daemon lives) tell another daemon
-- whether it is alive: requests leased by a daemon that is provably gone go back to the queue
-- at once, and a second daemon on the same database is refused unless started with
-- `run --allow-multiple`. Written by imgbatch only; read it freely (`imgbatch status`).
CREATE TABLE daemons (
    owner        TEXT PRIMARY KEY,           -- the lease owner id (requests.lease_owner)
    host         TEXT    NOT NULL,           -- host name
    pid          INTEGER NOT NULL,           -- process id (in the daemon's own PID namespace)
    started_at   REAL    NOT NULL,           -- when it started
    heartbeat_at REAL    NOT NULL,           -- last sign of life (every few seconds)
    stopped_at   REAL,                       -- when it stopped (cleanly, or found gone)
    multiple     INTEGER NOT NULL DEFAULT 0, -- 1: started with --allow-multiple
    local_pause  TEXT                        -- why it holds its dispatching (output directory
                                             -- not writable, disk full), NULL when it does not
);
CREATE INDEX daemons_live ON daemons(heartbeat_at) WHERE stopped_at IS NULL;
