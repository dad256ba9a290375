-- imgbatch schema, version 3: request counters for timeouts that may have been billed and for
-- failures blamed on the provider (see README, "Error classes").

-- Timeouts that may have been billed (a response deadline passed, or a gateway answered 504
-- or 524 while the provider may still be generating): counted against retry.max_timeouts,
-- not against retry.max_attempts.
ALTER TABLE requests ADD COLUMN timeouts INTEGER NOT NULL DEFAULT 0;

-- Server and network failures that came in a run of failures of the provider (its circuit
-- breaker tripped): counted against retry.max_provider_failures, not retry.max_attempts.
ALTER TABLE requests ADD COLUMN provider_failures INTEGER NOT NULL DEFAULT 0;
