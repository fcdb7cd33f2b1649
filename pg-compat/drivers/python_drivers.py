"""psycopg 3, asyncpg and SQLAlchemy against a running KalamDB (host/port/password from the
environment). Each driver creates its own table, writes typed rows with bound parameters and
with COPY, reads them back and checks the values; SQLAlchemy's inspector reads the catalog."""
import asyncio
import datetime as dt
import decimal
import os
import sys
import uuid

HOST = "127.0.0.1"
PORT = int(os.environ["KALAMDB_PORT"])
PASSWORD = os.environ["KALAMDB_PASSWORD"]
WHEN = dt.datetime(2026, 11, 26, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)
ROWS = [
    (1, "ann", 1.5, True, dt.date(2026, 1, 2), WHEN, decimal.Decimal("12.50")),
    (2, "bob", -3.25, False, dt.date(1999, 12, 31), WHEN, decimal.Decimal("0.00")),
]
CREATE = ("CREATE TABLE {t} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION, "
          "ok BOOLEAN, day DATE, at TIMESTAMPTZ, amount NUMERIC(10,2))")
results = []


def check(name, fn):
    try:
        fn()
        results.append((name, None))
    except Exception as e:  # noqa: BLE001 - every failure is reported by name
        results.append((name, e))


def psycopg_extended_protocol():
    import psycopg
    with psycopg.connect(host=HOST, port=PORT, user="root", password=PASSWORD, dbname="kalamdb") as conn:
        conn.autocommit = True
        conn.execute("CREATE NAMESPACE IF NOT EXISTS drivers")
        conn.execute(CREATE.format(t="drivers.psycopg"))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO drivers.psycopg VALUES (%s, %s, %s, %s, %s, %s, %s)", ROWS)
            cur.execute("SELECT * FROM drivers.psycopg WHERE id >= %s ORDER BY id", (1,))
            assert [tuple(r) for r in cur.fetchall()] == ROWS, "round trip"
            assert [c.name for c in cur.description][:2] == ["id", "name"]
        with conn.transaction():
            conn.execute("UPDATE drivers.psycopg SET name = %s WHERE id = %s", ("ann2", 1))
        assert conn.execute("SELECT name FROM drivers.psycopg WHERE id = 1").fetchone()[0] == "ann2"
        try:
            conn.execute("INSERT INTO drivers.psycopg (id, name) VALUES (1, 'dup')")
            raise AssertionError("duplicate key accepted")
        except psycopg.errors.UniqueViolation:
            pass


def psycopg_server_side_cursors():
    """Named cursors: DECLARE with bound parameters, FETCH FORWARD in chunks, Describe of the
    cursor as a portal, MOVE for scroll(); WITH HOLD outside a transaction."""
    import psycopg
    with psycopg.connect(host=HOST, port=PORT, user="root", password=PASSWORD, dbname="kalamdb") as conn:
        conn.autocommit = True
        conn.execute("CREATE NAMESPACE IF NOT EXISTS drivers")
        conn.execute("CREATE TABLE drivers.named (id INT PRIMARY KEY, v TEXT NOT NULL)")
        conn.execute("INSERT INTO drivers.named SELECT g, 'v' || g FROM generate_series(1, 5000) AS g")
        with conn.cursor("held", withhold=True) as cur:
            cur.itersize = 700
            cur.execute("SELECT id, v FROM drivers.named WHERE id > %s ORDER BY id", (10,))
            assert [c.name for c in cur.description] == ["id", "v"], cur.description
            rows = list(cur)
            assert len(rows) == 4990 and rows[0] == (11, "v11") and rows[-1] == (5000, "v5000"), rows[:3]
        conn.autocommit = False
        with conn.transaction():
            with conn.cursor("scrolled", scrollable=True) as cur:
                cur.execute("SELECT id FROM drivers.named ORDER BY id LIMIT 10")
                assert cur.fetchmany(3) == [(1,), (2,), (3,)]
                assert cur.fetchone() == (4,)
                cur.scroll(-2)
                assert cur.fetchone() == (3,)
                cur.scroll(8, mode="absolute")
                assert cur.fetchall() == [(9,), (10,)]


def asyncpg_binary_protocol():
    import asyncpg

    async def run():
        conn = await asyncpg.connect(host=HOST, port=PORT, user="root", password=PASSWORD, database="kalamdb")
        try:
            await conn.execute("CREATE NAMESPACE IF NOT EXISTS drivers")
            await conn.execute(CREATE.format(t="drivers.asyncpg"))
            await conn.executemany("INSERT INTO drivers.asyncpg VALUES ($1, $2, $3, $4, $5, $6, $7)", ROWS)
            rows = await conn.fetch("SELECT * FROM drivers.asyncpg ORDER BY id")
            assert [tuple(r) for r in rows] == ROWS, f"round trip: {rows}"
            assert await conn.fetchval("SELECT count(*) FROM drivers.asyncpg WHERE score > $1", 0.0) == 1
            async with conn.transaction():
                await conn.execute("DELETE FROM drivers.asyncpg WHERE id = $1", 2)
            assert await conn.fetchval("SELECT count(*) FROM drivers.asyncpg") == 1
        finally:
            await conn.close()

    asyncio.run(asyncio.wait_for(run(), 60))


def sqlalchemy_core_and_inspector():
    import sqlalchemy as sa
    url = f"postgresql+psycopg://root:{PASSWORD}@{HOST}:{PORT}/kalamdb"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE NAMESPACE IF NOT EXISTS drivers"))
        conn.execute(sa.text(CREATE.format(t="drivers.alchemy")))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO drivers.alchemy (id, name) VALUES (:id, :name)"),
                     [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM drivers.alchemy")).scalar() == 2
    inspector = sa.inspect(engine)
    assert "alchemy" in inspector.get_table_names(schema="drivers"), inspector.get_table_names(schema="drivers")
    schemas = inspector.get_schema_names()
    assert "drivers" in schemas and "public" in schemas, schemas
    assert inspector.has_table("alchemy", schema="drivers")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE drivers.alchemy_meta (region VARCHAR(8) NOT NULL, id BIGINT NOT NULL, "
            "label VARCHAR(20) NOT NULL DEFAULT 'x', price NUMERIC(10,2), PRIMARY KEY (region, id))"))
    inspector = sa.inspect(engine)
    columns = {c["name"]: c for c in inspector.get_columns("alchemy_meta", schema="drivers")}
    assert list(columns) == ["region", "id", "label", "price"], list(columns)
    assert isinstance(columns["region"]["type"], sa.VARCHAR) and columns["region"]["type"].length == 8, columns
    assert isinstance(columns["id"]["type"], sa.BIGINT), columns
    assert isinstance(columns["price"]["type"], sa.NUMERIC), columns
    assert (columns["price"]["type"].precision, columns["price"]["type"].scale) == (10, 2), columns
    assert [columns[c]["nullable"] for c in columns] == [False, False, False, True], columns
    assert columns["label"]["default"] == "'x'" and columns["id"]["default"] is None, columns
    pk = inspector.get_pk_constraint("alchemy_meta", schema="drivers")
    assert pk["constrained_columns"] == ["region", "id"] and pk["name"] == "alchemy_meta_pkey", pk
    # The primary key's index is not a separate index, as in PostgreSQL.
    assert inspector.get_indexes("alchemy_meta", schema="drivers") == [], inspector.get_indexes("alchemy_meta", schema="drivers")
    assert inspector.get_unique_constraints("alchemy_meta", schema="drivers") == []
    assert inspector.get_foreign_keys("alchemy_meta", schema="drivers") == []
    # Reflection builds a Table from all of the above.
    table = sa.Table("alchemy_meta", sa.MetaData(), autoload_with=engine, schema="drivers")
    assert [c.name for c in table.primary_key.columns] == ["region", "id"], table.primary_key
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"region": "eu", "id": 1, "price": decimal.Decimal("2.50")}])
        row = conn.execute(sa.select(table.c.label, table.c.price)).one()
    assert row == ("x", decimal.Decimal("2.50")), row
    engine.dispose()


def sqlalchemy_orm_with_autoincrement_keys():
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Ticket(Base):
        __tablename__ = "orm_tickets"
        __table_args__ = (sa.CheckConstraint("priority BETWEEN 0 AND 9", name="orm_tickets_priority"),)
        id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(50))
        code: Mapped[str] = mapped_column(sa.String(20), unique=True, nullable=True)
        owner: Mapped[str] = mapped_column(sa.String(20), index=True, nullable=True)
        priority: Mapped[int] = mapped_column(sa.Integer, default=0)

    class Event(Base):
        __tablename__ = "orm_events"
        id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
        what: Mapped[str] = mapped_column(sa.String(20))

    engine = sa.create_engine(f"postgresql+psycopg://root:{PASSWORD}@{HOST}:{PORT}/kalamdb")
    # create_all emits SERIAL and GENERATED ALWAYS AS IDENTITY; the ORM reads the new keys back
    # through INSERT ... RETURNING.
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Ticket(title="a"), Ticket(title="b"), Event(what="boot")])
        session.commit()
        assert [(t.id, t.title) for t in session.scalars(sa.select(Ticket).order_by(Ticket.id))] == [(1, "a"), (2, "b")]
        assert session.scalars(sa.select(Event.id)).all() == [1]
        session.get(Ticket, 2).title = "B"
        session.delete(session.get(Ticket, 1))
        session.commit()
        assert [(t.id, t.title) for t in session.scalars(sa.select(Ticket))] == [(2, "B")]
        session.add(Ticket(title="c"))
        session.commit()
        assert session.scalars(sa.select(Ticket.id).where(Ticket.title == "c")).one() == 3
    # unique=True, index=True and CheckConstraint were created with the table and are enforced.
    with Session(engine) as session:
        session.add(Ticket(title="d", code="T-1", owner="ann", priority=5))
        session.commit()
        session.add(Ticket(title="e", code="T-1"))
        try:
            session.commit()
            raise AssertionError("a duplicate code was accepted")
        except sa.exc.IntegrityError as e:
            assert getattr(e.orig, "sqlstate", None) == "23505", e
            session.rollback()
        session.add(Ticket(title="f", priority=12))
        try:
            session.commit()
            raise AssertionError("a priority outside the check was accepted")
        except sa.exc.IntegrityError as e:
            assert getattr(e.orig, "sqlstate", None) == "23514", e
            session.rollback()
        assert session.scalars(sa.select(Ticket.title).where(Ticket.owner == "ann")).all() == ["d"]
    inspector = sa.inspect(engine)
    indexes = inspector.get_indexes("orm_tickets")
    # As on PostgreSQL, a unique constraint's index is listed too, marked as its duplicate.
    assert [(i["name"], i["column_names"], i["unique"], i.get("duplicates_constraint")) for i in indexes] == [
        ("ix_orm_tickets_owner", ["owner"], False, None),
        ("orm_tickets_code_key", ["code"], True, "orm_tickets_code_key"),
    ], indexes
    uniques = inspector.get_unique_constraints("orm_tickets")
    assert [(u["name"], u["column_names"]) for u in uniques] == [("orm_tickets_code_key", ["code"])], uniques
    checks = inspector.get_check_constraints("orm_tickets")
    assert [c["name"] for c in checks] == ["orm_tickets_priority"], checks
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("orm_tickets")}
    assert columns["id"]["autoincrement"] is True, columns
    assert columns["id"]["default"] == "nextval('orm_tickets_id_seq'::regclass)", columns
    Base.metadata.drop_all(engine)
    assert not sa.inspect(engine).has_table("orm_tickets")
    engine.dispose()


def sqlalchemy_orm_with_foreign_keys_and_relationships():
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

    class Base(DeclarativeBase):
        pass

    shelf_tags = sa.Table(
        "orm_book_tags", Base.metadata,
        sa.Column("book_id", sa.ForeignKey("orm_books.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(20), primary_key=True),
    )

    class Author(Base):
        __tablename__ = "orm_authors"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(40))
        books: Mapped[list["Book"]] = relationship(
            back_populates="author", cascade="all, delete-orphan", order_by="Book.id",
            foreign_keys="Book.author_id")

    class Book(Base):
        __tablename__ = "orm_books"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(sa.String(40))
        author_id: Mapped[int] = mapped_column(sa.ForeignKey("orm_authors.id"))
        editor_id: Mapped[int | None] = mapped_column(
            sa.ForeignKey("orm_authors.id", ondelete="SET NULL"), nullable=True)
        author: Mapped[Author] = relationship(back_populates="books", foreign_keys=[author_id])

    engine = sa.create_engine(f"postgresql+psycopg://root:{PASSWORD}@{HOST}:{PORT}/kalamdb")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        ann = Author(name="Ann", books=[Book(title="One"), Book(title="Two")])
        bob = Author(name="Bob")
        session.add_all([ann, bob])
        session.commit()
        one = session.scalars(sa.select(Book).where(Book.title == "One")).one()
        assert one.author.name == "Ann"
        one.editor_id = bob.id
        session.execute(shelf_tags.insert(), [{"book_id": one.id, "tag": "new"}])
        session.commit()
        assert [b.title for b in session.get(Author, ann.id).books] == ["One", "Two"]
        # The database refuses a book by nobody, and the ORM sees an IntegrityError.
        session.add(Book(title="Nobody's", author_id=999))
        try:
            session.commit()
            raise AssertionError("a book by a missing author was accepted")
        except sa.exc.IntegrityError as e:
            assert getattr(e.orig, "sqlstate", None) == "23503", e
            session.rollback()
        # Deleting a referenced author directly fails (NO ACTION)...
        try:
            session.execute(sa.delete(Author).where(Author.id == ann.id))
            session.commit()
            raise AssertionError("a referenced author was deleted")
        except sa.exc.IntegrityError as e:
            assert getattr(e.orig, "sqlstate", None) == "23503", e
            session.rollback()
        # ...while the ORM's cascade deletes the books first; ON DELETE CASCADE takes the tags.
        session.delete(session.get(Author, ann.id))
        session.commit()
        assert session.scalars(sa.select(sa.func.count()).select_from(Book)).one() == 0
        assert session.execute(sa.select(sa.func.count()).select_from(shelf_tags)).scalar() == 0
        # ON DELETE SET NULL clears an editor that goes.
        session.add(Book(title="Three", author_id=bob.id, editor_id=bob.id))
        carl = Author(name="Carl")
        session.add(carl)
        session.commit()
        three = session.scalars(sa.select(Book).where(Book.title == "Three")).one()
        three.editor_id = carl.id
        session.commit()
        session.execute(sa.delete(Author).where(Author.id == carl.id))
        session.commit()
        session.expire_all()
        assert session.scalars(sa.select(Book.editor_id).where(Book.title == "Three")).one() is None
    keys = sa.inspect(engine).get_foreign_keys("orm_books")
    found = sorted((k["constrained_columns"], k["referred_table"], k["referred_columns"],
                    k["options"].get("ondelete")) for k in keys)
    assert found == [(["author_id"], "orm_authors", ["id"], None),
                     (["editor_id"], "orm_authors", ["id"], "SET NULL")], keys
    Base.metadata.drop_all(engine)
    assert not sa.inspect(engine).has_table("orm_books")
    engine.dispose()


def psycopg_copy():
    """cursor.copy both ways: text rows written with write_row, a CSV block, binary rows, a
    bad row that loads nothing, and COPY TO read back row by row."""
    import psycopg
    with psycopg.connect(host=HOST, port=PORT, user="root", password=PASSWORD, dbname="kalamdb") as conn:
        conn.autocommit = True
        conn.execute("CREATE NAMESPACE IF NOT EXISTS drivers")
        conn.execute(CREATE.format(t="drivers.psycopg_copy"))
        with conn.cursor() as cur:
            with cur.copy("COPY drivers.psycopg_copy FROM STDIN") as copy:
                for row in ROWS:
                    copy.write_row(row)
            assert cur.rowcount == 2, cur.rowcount
            with cur.copy("COPY drivers.psycopg_copy (id, name) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write('3,"c, with comma"\n4,plain\n')
            with cur.copy("COPY drivers.psycopg_copy (id, name, score) FROM STDIN (FORMAT binary)") as copy:
                copy.set_types(["int8", "text", "float8"])
                copy.write_row((5, "binary", 2.5))
            try:
                with cur.copy("COPY drivers.psycopg_copy (id, name) FROM STDIN") as copy:
                    copy.write_row((6, "fine"))
                    copy.write_row((1, "duplicate"))
                raise AssertionError("a duplicate key was loaded")
            except psycopg.errors.UniqueViolation:
                pass
            assert conn.execute("SELECT count(*) FROM drivers.psycopg_copy").fetchone()[0] == 5
            with cur.copy("COPY (SELECT * FROM drivers.psycopg_copy WHERE id <= 2 ORDER BY id) TO STDOUT") as copy:
                copy.set_types(["int8", "text", "float8", "bool", "date", "timestamptz", "numeric"])
                assert list(copy.rows()) == ROWS
            with cur.copy("COPY drivers.psycopg_copy (id, name) TO STDOUT (FORMAT csv, HEADER)") as copy:
                text = b"".join(bytes(block) for block in copy).decode()
            assert text.splitlines()[:2] == ["id,name", "1,ann"], text


def asyncpg_copy():
    """copy_records_to_table (binary COPY FROM), copy_to_table from a file-like source, and
    copy_from_query / copy_from_table (COPY TO)."""
    import asyncpg
    import io

    async def run():
        conn = await asyncpg.connect(host=HOST, port=PORT, user="root", password=PASSWORD, database="kalamdb")
        try:
            await conn.execute("CREATE NAMESPACE IF NOT EXISTS drivers")
            await conn.execute(CREATE.format(t="drivers.asyncpg_copy"))
            result = await conn.copy_records_to_table("asyncpg_copy", schema_name="drivers", records=ROWS)
            assert result == "COPY 2", result
            source = io.BytesIO(b"3,three\n4,four\n")
            result = await conn.copy_to_table("asyncpg_copy", schema_name="drivers", source=source,
                                              columns=["id", "name"], format="csv")
            assert result == "COPY 2", result
            rows = await conn.fetch("SELECT * FROM drivers.asyncpg_copy WHERE id <= 2 ORDER BY id")
            assert [tuple(r) for r in rows] == ROWS, rows
            out = io.BytesIO()
            result = await conn.copy_from_query("SELECT id, name FROM drivers.asyncpg_copy ORDER BY id",
                                                output=out, format="csv")
            assert result == "COPY 4", result
            assert out.getvalue() == b"1,ann\n2,bob\n3,three\n4,four\n", out.getvalue()
            out = io.BytesIO()
            await conn.copy_from_table("asyncpg_copy", schema_name="drivers", columns=["id"], output=out)
            assert sorted(out.getvalue().split()) == [b"1", b"2", b"3", b"4"], out.getvalue()
        finally:
            await conn.close()

    asyncio.run(asyncio.wait_for(run(), 60))


check("psycopg_extended_protocol", psycopg_extended_protocol)
check("psycopg_server_side_cursors", psycopg_server_side_cursors)
check("asyncpg_binary_protocol", asyncpg_binary_protocol)
check("psycopg_copy", psycopg_copy)
check("asyncpg_copy", asyncpg_copy)
check("sqlalchemy_core_and_inspector", sqlalchemy_core_and_inspector)
check("sqlalchemy_orm_with_autoincrement_keys", sqlalchemy_orm_with_autoincrement_keys)
check("sqlalchemy_orm_with_foreign_keys_and_relationships", sqlalchemy_orm_with_foreign_keys_and_relationships)
for name, error in results:
    print(f"{'ok' if error is None else 'FAILED'}: {name}" + ("" if error is None else f": {error!r}"))
failed = sum(1 for _, e in results if e is not None)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
