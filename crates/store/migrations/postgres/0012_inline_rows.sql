-- Audit leaves and gate decisions are rows of 2–3 KB (a decision and its record each hold the
-- rules' whole input): past the ≈ 2 KB at which PostgreSQL starts to TOAST a row, so every
-- one was compressed on insert — CPU spent on the path every gate decision waits for, to save
-- a kilobyte of disk. Rows up to a page now stay inline and uncompressed.
ALTER TABLE audit_leaves SET (toast_tuple_target = 8160);
ALTER TABLE gate_decisions SET (toast_tuple_target = 8160);
