-- A meeting's page link carries a key derived from the page secret, the
-- meeting's id and this generation. Issuing a new link
-- (`POST /api/meetings/{id}/page-link`) increases it, and every link
-- issued before stops working.
ALTER TABLE meetings ADD COLUMN page_generation BIGINT NOT NULL DEFAULT 0;
