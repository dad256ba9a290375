-- imgbatch schema: a budget of a batch's own (see README "Budgets").
--
-- `imgbatch enqueue --budget USD` sets it (`--budget none` clears it). While it is set it
-- replaces the config's budget.max_usd_per_batch for that batch, above or below it: the daemon
-- starts no call of the batch whose worst case would bring the batch's spend (its billed
-- attempts' cost_usd) above it. A running daemon reads it with the spend, every
-- poll_interval_s, so a change needs no SIGHUP. Set it by SQL as well:
-- UPDATE batches SET max_usd = 5 WHERE name = 'night';

-- USD the batch may spend in all (all runs, all daemons); 0 stops its calls. NULL: the
-- config's budget.max_usd_per_batch applies (none when it is not set).
ALTER TABLE batches ADD COLUMN max_usd REAL CHECK (max_usd IS NULL OR max_usd >= 0);
