-- Positions in flight are now marked by advisory locks held by the writer's session (see
-- postgres/positions.rs): they vanish with a dead process instead of waiting for a reaper.
DROP TABLE stream_inflight;
