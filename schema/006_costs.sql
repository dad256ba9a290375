-- imgbatch schema, version 6: what each attempt cost (see README "Prices and spend").
--
-- Every attempt records whether the provider billed it and what it cost, computed when its
-- outcome is recorded from the provider's usage (tokens), or per image, or per call, at the
-- price of the model at its provider (catalog/models.json "prices", a provider's "prices" in
-- the config). Spend is the sum of cost_usd over billed attempts.

-- 1: the provider billed the attempt (an answer with or without images, a timeout or an answer
-- cut off after the request was sent); 0: it did not (refused before any work: 4xx, 429, a
-- connection that never carried the request); NULL: not known (a daemon that died during the
-- call, attempts recorded before version 6 that did not end in 'ok' or 'partial').
ALTER TABLE attempts ADD COLUMN billed INTEGER;
-- USD the attempt cost (the billed amount, batch discount included); NULL: unknown (no price
-- for the model at its provider). Attempts that were not billed cost 0 or NULL.
ALTER TABLE attempts ADD COLUMN cost_usd REAL;
-- How cost_usd was computed: 'tokens' (usage times the per-1M-token rates), 'per_image',
-- 'per_call', 'worst_case' (billed without usage, e.g. a timeout: the worst case of the
-- request stands in), 'not_billed' (cost 0); NULL when cost_usd is NULL.
ALTER TABLE attempts ADD COLUMN cost_basis TEXT;
-- The provider's usage in one vocabulary, whatever its API (NULL when it reported none):
-- tokens of the prompt text and of input images (cached ones apart), of output images and of
-- text the model wrote (a revised prompt, thoughts). The raw object stays in usage.
ALTER TABLE attempts ADD COLUMN input_text_tokens INTEGER;
ALTER TABLE attempts ADD COLUMN input_image_tokens INTEGER;
ALTER TABLE attempts ADD COLUMN cached_input_tokens INTEGER;
ALTER TABLE attempts ADD COLUMN output_image_tokens INTEGER;
ALTER TABLE attempts ADD COLUMN output_text_tokens INTEGER;
-- The daemon (daemons.owner, one per `imgbatch run`) that made the attempt; NULL before
-- version 6.
ALTER TABLE attempts ADD COLUMN owner TEXT;

-- Attempts recorded before version 6: an answer that produced images was billed.
UPDATE attempts SET billed = 1 WHERE outcome IN ('ok', 'partial');

-- Spend since a time, and spend of a run, read from the index alone.
CREATE INDEX attempts_spend ON attempts(finished_at, cost_usd) WHERE billed = 1;
CREATE INDEX attempts_owner_spend ON attempts(owner, cost_usd) WHERE billed = 1;
