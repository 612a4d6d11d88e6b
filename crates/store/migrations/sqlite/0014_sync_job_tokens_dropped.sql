-- A job token (ADO's AuthToken) is kept only while its callback has yet to be posted (ADR 0015).
-- Earlier releases also kept the token of every sync-mode check, which no callback ever erased,
-- and the tokens of callbacks already posted or given up; and a token past ADO's 48 hours opens
-- nothing any more: all dropped here. Tokens of callbacks still waiting stay as they were (in
-- clear) and are used once more. (`decided_at` is fixed-width UTC text, `…T…Z`, so comparing
-- with a stamp of the same form two days ago compares times.)
UPDATE gate_decisions
   SET callback_token = NULL
 WHERE callback_token IS NOT NULL
   AND (callback_state IS NULL
        OR callback_state IN ('sent', 'failed')
        OR decided_at < strftime('%Y-%m-%dT%H:%M:%S', 'now', '-2 days'));
