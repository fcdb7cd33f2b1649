// node-postgres against a running KalamDB: SCRAM login, parameters, types, errors, and COPY
// through pg-copy-streams.
const { Client } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { pipeline } = require('node:stream/promises');
const { Readable, Writable } = require('node:stream');

async function main() {
  const client = new Client({
    host: '127.0.0.1', port: Number(process.env.KALAMDB_PORT), user: 'root',
    password: process.env.KALAMDB_PASSWORD, database: 'kalamdb',
  });
  await client.connect();
  let passed = 0, failed = 0;
  async function check(name, fn) {
    try { await fn(); passed++; console.log(`ok: ${name}`); }
    catch (e) { failed++; console.log(`FAILED: ${name}: ${e.stack || e}`); }
  }
  await check('round trip with parameters', async () => {
    await client.query('CREATE NAMESPACE IF NOT EXISTS drivers');
    await client.query('CREATE TABLE drivers.node (id BIGINT PRIMARY KEY, name TEXT, ok BOOLEAN, score DOUBLE PRECISION, day DATE)');
    await client.query('INSERT INTO drivers.node VALUES ($1, $2, $3, $4, $5)', [1, 'ann', true, 2.5, '2026-11-26']);
    const { rows } = await client.query('SELECT id, name, ok, score, day::text AS day FROM drivers.node WHERE id = $1', [1]);
    if (rows.length !== 1) throw new Error(`rows: ${JSON.stringify(rows)}`);
    const r = rows[0];
    if (r.id !== '1' || r.name !== 'ann' || r.ok !== true || r.score !== 2.5 || r.day !== '2026-11-26') {
      throw new Error(`values: ${JSON.stringify(r)}`);
    }
  });
  await check('untyped parameters take the type their context requires', async () => {
    // node-postgres sends every parameter as text with no type: the server types each one.
    await client.query('CREATE TABLE drivers.node_untyped (id BIGINT PRIMARY KEY, v INTEGER, note TEXT)');
    await client.query('INSERT INTO drivers.node_untyped VALUES ($1 + $2 * 100000000, $3 * 2, $4)', [7, 3, 21, 'x']);
    await client.query('UPDATE drivers.node_untyped SET v = v + $1 WHERE id = $2 + 0', [1, 300000007]);
    const { rows } = await client.query(
      'SELECT id, v, abs($2) AS a, substr($3, 2) AS s, CASE WHEN v > $4 THEN $5 ELSE note END AS c FROM drivers.node_untyped WHERE id = $1',
      [300000007, -2.5, 'hello', 40, 'big']);
    const got = JSON.stringify(rows);
    if (got !== '[{"id":"300000007","v":43,"a":2.5,"s":"ello","c":"big"}]') throw new Error(got);
  });
  await check('errors carry SQLSTATE and the connection stays usable', async () => {
    try { await client.query('SELECT * FROM drivers.missing'); throw new Error('no error'); }
    catch (e) { if (e.code !== '42P01') throw e; }
    const { rows } = await client.query('SELECT 1 AS one');
    if (rows[0].one !== 1 && rows[0].one !== '1') throw new Error(JSON.stringify(rows));
  });
  await check('pg-copy-streams loads and unloads CSV', async () => {
    await client.query('CREATE TABLE drivers.node_copy (id BIGINT PRIMARY KEY, name TEXT)');
    const rows = Array.from({ length: 1000 }, (_, i) => `${i + 1},"name ${i + 1}"\n`);
    const sink = client.query(copyFrom('COPY drivers.node_copy FROM STDIN WITH (FORMAT csv)'));
    await pipeline(Readable.from(rows), sink);
    if (sink.rowCount !== 1000) throw new Error(`rowCount ${sink.rowCount}`);
    const chunks = [];
    const source = client.query(copyTo('COPY (SELECT * FROM drivers.node_copy WHERE id <= 3 ORDER BY id) TO STDOUT'));
    await pipeline(source, new Writable({ write(chunk, _enc, done) { chunks.push(chunk); done(); } }));
    const text = Buffer.concat(chunks).toString();
    if (text !== '1\tname 1\n2\tname 2\n3\tname 3\n') throw new Error(`copied out: ${JSON.stringify(text)}`);
    const { rows: [count] } = await client.query('SELECT count(*) AS n FROM drivers.node_copy');
    if (Number(count.n) !== 1000) throw new Error(`count ${count.n}`);
  });
  await client.end();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
main().catch((e) => { console.log(`FAILED: ${e.stack || e}`); process.exit(1); });
