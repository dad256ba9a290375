-- imgbatch schema: budgets holding dispatching (see README "Budgets").
--
-- A daemon writes a row when a budget of its config (budget.max_usd_per_batch, _per_day,
-- _per_run) stops it from starting a provider's next call, and deletes it when the budget
-- lets calls start again (raised by SIGHUP, a new day) or when the daemon stops. `status`
-- and `providers` show such a provider's lane as `budget`. Rows of a daemon that is gone
-- (see daemons) mean nothing.
CREATE TABLE budget_holds (
    owner TEXT NOT NULL,             -- the daemon (daemons.owner)
    provider TEXT NOT NULL,          -- the provider whose next call is held
    budget TEXT NOT NULL,            -- 'batch', 'day' or 'run'
    batch TEXT NOT NULL DEFAULT '',  -- the batch, for a 'batch' budget; '' otherwise
    limit_usd REAL NOT NULL,         -- the budget in USD
    spent_usd REAL NOT NULL,         -- billed so far (and in flight) when the hold began
    need_usd REAL,                   -- worst case of the call held; NULL: it has no price
    since REAL NOT NULL,             -- when the hold began (Unix seconds)
    PRIMARY KEY (owner, provider, budget, batch)
);
