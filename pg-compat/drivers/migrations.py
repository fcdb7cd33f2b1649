"""Migration tools against a running KalamDB (host/port/password from the environment):
Alembic upgrades through three migrations and back, and a failing migration leaves nothing
behind; Django's ORM migrates an app with a ForeignKey, unique_together and indexes, writes
and reads through it, and migrates back to zero. Each check is reported by name."""
import os
import pathlib
import sys
import tempfile
import textwrap

HOST = "127.0.0.1"
PORT = int(os.environ["KALAMDB_PORT"])
PASSWORD = os.environ["KALAMDB_PASSWORD"]
results = []


def check(name, fn):
    try:
        fn()
        results.append((name, None))
    except Exception as e:  # noqa: BLE001 - every failure is reported by name
        results.append((name, e))


DJANGO_MODELS = '''
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=200)
    year = models.IntegerField(db_index=True)

    class Meta:
        unique_together = [("author", "title")]
        indexes = [models.Index(fields=["title", "year"], name="shop_book_title_year")]
'''


ALEMBIC_ENV = """
from alembic import context
import sqlalchemy as sa

engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    # One transaction per migration: a failing one is rolled back whole.
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

ALEMBIC_MIGRATIONS = {
    "0001_create": """
revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa

def upgrade():
    op.create_table(
        "alembic_accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )

def downgrade():
    op.drop_table("alembic_accounts")
""",
    "0002_email": """
revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa

def upgrade():
    op.add_column("alembic_accounts", sa.Column("email", sa.String(100), nullable=True))
    op.create_index("ix_alembic_accounts_email", "alembic_accounts", ["email"], unique=True)

def downgrade():
    op.drop_index("ix_alembic_accounts_email", table_name="alembic_accounts")
    op.drop_column("alembic_accounts", "email")
""",
    "0003_rename": """
revision = "0003"
down_revision = "0002"
from alembic import op

def upgrade():
    op.alter_column("alembic_accounts", "name", new_column_name="full_name")
    op.rename_table("alembic_accounts", "alembic_members")

def downgrade():
    op.rename_table("alembic_members", "alembic_accounts")
    op.alter_column("alembic_accounts", "full_name", new_column_name="name")
""",
}

ALEMBIC_BROKEN = """
revision = "0004"
down_revision = "0003"
from alembic import op
import sqlalchemy as sa

def upgrade():
    op.create_table("alembic_half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("alembic_members", sa.Column("nickname", sa.Text))
    op.execute("INSERT INTO alembic_members (id, full_name) VALUES (1, 'dup')")

def downgrade():
    pass
"""


def alembic_upgrade_downgrade_and_a_failing_migration():
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    root = pathlib.Path(tempfile.mkdtemp())
    (root / "versions").mkdir()
    (root / "env.py").write_text(ALEMBIC_ENV)
    for name, text in ALEMBIC_MIGRATIONS.items():
        (root / "versions" / f"{name}.py").write_text(text)
    url = f"postgresql+psycopg://root:{PASSWORD}@{HOST}:{PORT}/kalamdb"
    config = Config()
    config.set_main_option("script_location", str(root))
    config.set_main_option("sqlalchemy.url", url)
    engine = sa.create_engine(url)

    def state():
        inspector = sa.inspect(engine)
        tables = {t for t in inspector.get_table_names()
                  if t.startswith("alembic_") and t != "alembic_version"}
        with engine.connect() as c:
            version = c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        return tables, version

    command.upgrade(config, "head")
    assert state() == ({"alembic_members"}, "0003"), state()
    inspector = sa.inspect(engine)
    columns = [c["name"] for c in inspector.get_columns("alembic_members")]
    assert columns == ["id", "full_name", "email"], columns
    indexes = [(i["name"], i["column_names"], i["unique"]) for i in inspector.get_indexes("alembic_members")]
    assert indexes == [("ix_alembic_accounts_email", ["email"], True)], indexes
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO alembic_members (id, full_name, email) VALUES (1, 'Ann', 'a@x')"))
    # A migration that fails half-way (a duplicate key after DDL) leaves neither its table
    # nor its column, and the recorded version stays.
    (root / "versions" / "0004_broken.py").write_text(ALEMBIC_BROKEN)
    try:
        command.upgrade(config, "head")
        raise AssertionError("the broken migration succeeded")
    except sa.exc.IntegrityError as e:
        assert getattr(e.orig, "sqlstate", None) == "23505", e
    assert state() == ({"alembic_members"}, "0003"), state()
    columns = [c["name"] for c in sa.inspect(engine).get_columns("alembic_members")]
    assert columns == ["id", "full_name", "email"], columns
    (root / "versions" / "0004_broken.py").unlink()
    command.downgrade(config, "0001")
    assert state() == ({"alembic_accounts"}, "0001"), state()
    columns = [c["name"] for c in sa.inspect(engine).get_columns("alembic_accounts")]
    assert columns == ["id", "name"], columns
    with engine.connect() as c:
        row = c.execute(sa.text("SELECT id, name FROM alembic_accounts")).one()
    assert tuple(row) == (1, "Ann"), row
    command.downgrade(config, "base")
    assert state() == (set(), None), state()
    engine.dispose()


def django_migrate_crud_and_back_to_zero():
    root = pathlib.Path(tempfile.mkdtemp())
    (root / "shop" / "migrations").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "migrations" / "__init__.py").write_text("")
    (root / "shop" / "models.py").write_text(textwrap.dedent(DJANGO_MODELS))
    sys.path.insert(0, str(root))
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["shop"],
        DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql", "NAME": "kalamdb", "USER": "root",
            "PASSWORD": PASSWORD, "HOST": HOST, "PORT": PORT,
        }},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command
    from django.db import IntegrityError, connection, transaction

    call_command("makemigrations", "shop", verbosity=0)
    # One transaction: identity keys, a deferrable foreign key, unique_together, indexes
    # (one with varchar_pattern_ops for the unique email), all created by ALTER TABLE and
    # CREATE INDEX after the tables.
    call_command("migrate", "shop", verbosity=0)
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        assert {"shop_author", "shop_book", "django_migrations"} <= set(tables), tables
        cursor.execute(
            "SELECT contype::text, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "WHERE c.conrelid = 'shop_book'::regclass ORDER BY 1, 2")
        constraints = cursor.fetchall()
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'shop_book'")
        indexes = {row[0] for row in cursor.fetchall()}
    assert [c for c in constraints if c[0] != "p"] == [
        ("f", "FOREIGN KEY (author_id) REFERENCES shop_author(id) DEFERRABLE INITIALLY DEFERRED"),
        ("u", "UNIQUE (author_id, title)"),
    ], constraints
    assert "shop_book_title_year" in indexes, indexes

    from shop.models import Author, Book

    ann = Author.objects.create(name="Ann", email="ann@example.org")
    Book.objects.create(author=ann, title="One", year=2001)
    Book.objects.create(author=ann, title="Two", year=2002)
    titles = list(Book.objects.filter(author__name="Ann").order_by("year").values_list("title", flat=True))
    assert titles == ["One", "Two"], titles
    assert Author.objects.get(email__startswith="ann@").name == "Ann"
    try:
        with transaction.atomic():
            Book.objects.create(author=ann, title="One", year=2003)
        raise AssertionError("a duplicate (author, title) was accepted")
    except IntegrityError as e:
        assert e.__cause__.sqlstate == "23505", e
    # The constraint is DEFERRABLE INITIALLY DEFERRED: the bad row fails at COMMIT.
    try:
        with transaction.atomic():
            Book.objects.create(author_id=999, title="Orphan", year=1)
        raise AssertionError("a book of a missing author was accepted")
    except IntegrityError as e:
        assert e.__cause__.sqlstate == "23503", e
    # QuerySet.iterator() reads through a server-side cursor: DECLARE ... WITH HOLD, then
    # FETCH FORWARD chunk_size rows at a time.
    streamed = [book.title for book in Book.objects.order_by("year").iterator(chunk_size=1)]
    assert streamed == ["One", "Two"], streamed
    Book.objects.filter(title="Two").update(year=2020)
    assert Book.objects.get(title="Two").year == 2020
    # on_delete=CASCADE is Django's: it deletes the books, then the author.
    ann.delete()
    assert Book.objects.count() == 0
    call_command("migrate", "shop", "zero", verbosity=0)
    with connection.cursor() as cursor:
        left = set(connection.introspection.table_names(cursor)) & {"shop_author", "shop_book"}
    assert not left, left


check("alembic_upgrade_downgrade_and_a_failing_migration", alembic_upgrade_downgrade_and_a_failing_migration)
check("django_migrate_crud_and_back_to_zero", django_migrate_crud_and_back_to_zero)
for name, error in results:
    print(f"{'ok' if error is None else 'FAILED'}: {name}" + ("" if error is None else f": {error!r}"))
failed = sum(1 for _, e in results if e is not None)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
