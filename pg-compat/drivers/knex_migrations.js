// Knex (with node-postgres) against a running KalamDB: migrations that create tables with a
// foreign key, a unique constraint and an index, then add a column; CRUD through the query
// builder; rollback of every migration; and a failing migration that leaves nothing behind.
const knexFactory = require('knex');

const connection = {
  host: '127.0.0.1', port: Number(process.env.KALAMDB_PORT), user: 'root',
  password: process.env.KALAMDB_PASSWORD, database: 'kalamdb',
};

// Migrations given in code: Knex runs each in its own transaction.
const migrations = {
  '001_create_teams_and_players': {
    up: (knex) => knex.schema
      .createTable('knex_teams', (t) => {
        t.increments('id');
        t.string('name', 50).notNullable().unique();
      })
      .createTable('knex_players', (t) => {
        t.increments('id');
        t.integer('team_id').notNullable().references('id').inTable('knex_teams').onDelete('CASCADE');
        t.string('name', 50).notNullable();
        t.index(['team_id', 'name']);
      }),
    down: (knex) => knex.schema.dropTable('knex_players').dropTable('knex_teams'),
  },
  '002_add_number': {
    up: (knex) => knex.schema.alterTable('knex_players', (t) => {
      t.integer('number').nullable();
    }).then(() => knex.schema.alterTable('knex_players', (t) => { t.index(['number']); })),
    down: (knex) => knex.schema.alterTable('knex_players', (t) => {
      t.dropIndex(['number']);
      t.dropColumn('number');
    }),
  },
};

const failing = {
  '003_broken': {
    up: async (knex) => {
      await knex.schema.createTable('knex_half_done', (t) => { t.increments('id'); });
      await knex.raw('SELECT * FROM table_that_does_not_exist');
    },
    down: (knex) => knex.schema.dropTableIfExists('knex_half_done'),
  },
};

function source(defs) {
  return {
    getMigrations: async () => Object.keys(defs).sort(),
    getMigrationName: (name) => name,
    getMigration: async (name) => defs[name],
  };
}

async function main() {
  const knex = knexFactory({ client: 'pg', connection, pool: { min: 1, max: 2 } });
  let passed = 0, failed = 0;
  async function check(name, fn) {
    try { await fn(); passed++; console.log(`ok: ${name}`); }
    catch (e) { failed++; console.log(`FAILED: ${name}: ${e.stack || e}`); }
  }
  const expect = (cond, what) => { if (!cond) throw new Error(what); };

  await check('migrate to latest', async () => {
    // Two batches: the first migration alone, then the rest.
    await knex.migrate.up({ migrationSource: source(migrations) });
    const [batch, applied] = await knex.migrate.latest({ migrationSource: source(migrations) });
    expect(batch === 2 && applied.length === 1, `batch ${batch} applied ${JSON.stringify(applied)}`);
    expect(await knex.schema.hasTable('knex_players'), 'knex_players exists');
    expect(await knex.schema.hasColumn('knex_players', 'number'), 'number column exists');
  });

  await check('CRUD through the query builder, with constraints enforced', async () => {
    const [team] = await knex('knex_teams').insert({ name: 'Owls' }).returning(['id']);
    await knex('knex_players').insert([
      { team_id: team.id, name: 'Ann', number: 7 },
      { team_id: team.id, name: 'Bob', number: 9 },
    ]);
    const rows = await knex('knex_players').join('knex_teams', 'knex_teams.id', 'knex_players.team_id')
      .where('knex_teams.name', 'Owls').orderBy('number').select('knex_players.name', 'number');
    expect(JSON.stringify(rows) === JSON.stringify([{ name: 'Ann', number: 7 }, { name: 'Bob', number: 9 }]),
      `rows ${JSON.stringify(rows)}`);
    await knex('knex_players').where({ name: 'Bob' }).update({ number: 10 });
    const bob = await knex('knex_players').where({ name: 'Bob' }).first();
    expect(bob.number === 10, `bob ${JSON.stringify(bob)}`);
    for (const [row, code] of [[{ name: 'Owls' }, '23505']]) {
      try { await knex('knex_teams').insert(row); throw new Error('duplicate accepted'); }
      catch (e) { if (e.code !== code) throw e; }
    }
    try { await knex('knex_players').insert({ team_id: 999, name: 'Nobody' }); throw new Error('orphan accepted'); }
    catch (e) { if (e.code !== '23503') throw e; }
    // ON DELETE CASCADE.
    await knex('knex_teams').where({ id: team.id }).del();
    const left = await knex('knex_players').count('* as n').first();
    expect(Number(left.n) === 0, `players left ${JSON.stringify(left)}`);
  });

  await check('a failing migration leaves nothing behind', async () => {
    const all = { ...migrations, ...failing };
    try { await knex.migrate.latest({ migrationSource: source(all) }); throw new Error('no error'); }
    catch (e) { if (e.code !== '42P01') throw e; }
    expect(!(await knex.schema.hasTable('knex_half_done')), 'the half-done table was rolled back');
    const done = await knex('knex_migrations').pluck('name');
    expect(JSON.stringify(done.sort()) === JSON.stringify(Object.keys(migrations).sort()),
      `recorded ${JSON.stringify(done)}`);
  });

  await check('roll back every migration', async () => {
    await knex.migrate.rollback({ migrationSource: source(migrations) });
    expect(await knex.schema.hasTable('knex_players'), 'the first batch stays');
    expect(!(await knex.schema.hasColumn('knex_players', 'number')), 'number column dropped');
    await knex.migrate.rollback({ migrationSource: source(migrations) }, true);
    expect(!(await knex.schema.hasTable('knex_players')), 'knex_players dropped');
    expect(!(await knex.schema.hasTable('knex_teams')), 'knex_teams dropped');
  });

  await knex.destroy();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log(`FAILED: ${e.stack || e}`); process.exit(1); });
