-- Security round: token generations (a bump refuses every access or device token issued
-- before it) and the audit chain's signed checkpoints.
ALTER TABLE users ADD COLUMN token_gen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE terminals ADD COLUMN token_gen BIGINT NOT NULL DEFAULT 0;
