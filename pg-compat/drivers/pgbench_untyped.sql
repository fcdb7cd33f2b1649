-- pgbench's custom-script idiom: every :variable reaches the server as an untyped parameter
-- under -M extended and -M prepared, typed by the expression around it.
\set id random(1, 10000000)
INSERT INTO drivers.pgbench VALUES (:id + :client_id * 100000000, :client_id, 'n' || :id, now()) ON CONFLICT (id) DO NOTHING;
SELECT note FROM drivers.pgbench WHERE id = :id + :client_id * 100000000;
UPDATE drivers.pgbench SET hits = hits + 1 WHERE id = :id + :client_id * 100000000;
