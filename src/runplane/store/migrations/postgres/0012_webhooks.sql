-- Webhooks: a run created with kwargs.webhook has its final state POSTed there when it
-- ends, for any reason. The delivery is an outbox row written by the statement that ends
-- the run (this trigger: whichever path ends it, in its transaction), so a process that
-- dies right after still delivers it once a worker runs again. Workers claim due rows by
-- pushing next_attempt_at ahead (their lease on the attempt), retry with backoff, and give
-- up (status 'failed', last_error kept) after the attempts allowed.
CREATE TABLE webhook_deliveries (
    delivery_id     bigserial PRIMARY KEY,
    run_id          text NOT NULL,
    url             text NOT NULL,
    -- the status the run ended with (a resumed run ends again: a delivery each)
    run_status      text NOT NULL,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    last_error      text,
    created_at      double precision NOT NULL,
    delivered_at    double precision
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_run ON webhook_deliveries (run_id);
CREATE FUNCTION runs_end_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (run_id, url, run_status, status, next_attempt_at,
                                    created_at)
    VALUES (NEW.run_id, NEW.kwargs ->> 'webhook', NEW.status, 'pending', NEW.updated_at,
            NEW.updated_at);
    RETURN NULL;
END $$;
CREATE TRIGGER runs_end_webhook AFTER UPDATE OF status ON runs FOR EACH ROW
    WHEN (NEW.status IN ('success', 'error', 'timeout', 'interrupted')
          AND OLD.status NOT IN ('success', 'error', 'timeout', 'interrupted')
          AND NEW.kwargs ? 'webhook')
    EXECUTE FUNCTION runs_end_webhook();
