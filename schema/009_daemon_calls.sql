-- imgbatch schema, version 9: the calls each daemon has in flight.
--
-- A daemon claims requests ahead of its free slots (the prefetch), so the requests running
-- under its lease are more than the calls it has sent: `imgbatch status` shows both, the
-- claimed requests from the requests table and the calls from here.
ALTER TABLE daemons ADD COLUMN calls TEXT;  -- JSON object, provider name -> calls sent whose
                                            -- answer is not in yet, as of heartbeat_at; NULL:
                                            -- not reported (a daemon before version 9)
