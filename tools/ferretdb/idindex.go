package main

// FerretDB 1.24.2's SQLite backend finds a document by `_id` with `WHERE _ferretdb_sjson->'$._id' = ?`
// (internal/backends/sqlite/metadata.IDColumn), used by find/update/delete on a bare `_id` and by every
// UpdateAll/DeleteAll write-back, but it indexes `_id` as `_ferretdb_sjson->"_id"` (the generic index code).
// SQLite matches an expression index only by the expression's text, so the index is never used: EXPLAIN
// QUERY PLAN says SCAN, and a find_one by `_id` parses every document of the collection (measured: 100 to
// 190 ms at 2x10^4 documents). FerretDB's own `explain` shows the same plan.
//
// So we add, to every collection table, an index on the very expression FerretDB queries. FerretDB keeps its
// index list in its own metadata, not in sqlite_master, so the extra index is invisible to it; dropping the
// collection drops the table and the index with it. At start-up (before FerretDB opens anything) every
// table on disk gets it; afterwards a watcher looks, every pollInterval, at each database file that changed
// since its last look (size or mtime of the file or its WAL) and indexes the collections still lacking it;
// a file that keeps changing with nothing to index is looked at less often (back-off to 3.2 s, back to
// 200 ms once it had something). Until then a new collection's lookups scan, as before. Our connection is opened for that look only.
// (SQLite gives no hook for "a table was created": a TEMP trigger on FerretDB's collections table cannot be
// put on the first connection of a new file, which exists before that table.)

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // FerretDB's SQLite driver (database/sql "sqlite")
)

const (
	collectionsTable = "_ferretdb_collections" // FerretDB's metadata table (metadata.metadataTableName)
	indexSuffix      = "__id_path"
)

const (
	pollInterval = 200 * time.Millisecond
	// a file that changed but had nothing to index is looked at less and less often, up to this: a busy
	// database changes its WAL on every write, and opening it every 200 ms would cost CPU for nothing
	maxBackoff = 3200 * time.Millisecond
)

type fileState struct {
	size, walSize   int64
	mtime, walMtime time.Time
}

type watched struct {
	state fileState
	next  time.Time     // not looked at again before this
	wait  time.Duration // the current back-off
}

// installIDIndexer indexes the tables already in dir, then watches it. Call it before FerretDB starts.
func installIDIndexer(ctx context.Context, dir string, logger *slog.Logger) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if err != nil {
		return err
	}
	seen := map[string]*watched{}
	for _, f := range files {
		st := statFile(f)
		if _, err := indexFile(ctx, f); err != nil {
			return fmt.Errorf("indexing _id in %s: %w", f, err)
		}
		seen[f] = &watched{state: st, wait: pollInterval}
	}
	go watch(ctx, dir, seen, logger)
	return nil
}

func watch(ctx context.Context, dir string, seen map[string]*watched, logger *slog.Logger) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		live := make(map[string]bool, len(files))
		now := time.Now()
		for _, f := range files {
			live[f] = true
			w := seen[f]
			if w == nil {
				w = &watched{wait: pollInterval}
				seen[f] = w
			} else if now.Before(w.next) {
				continue
			}
			st := statFile(f)
			if w.state == st {
				continue
			}
			created, err := indexFile(ctx, f)
			if err != nil {
				logger.Warn("creating an _id index failed; lookups scan that collection until the next try",
					"file", filepath.Base(f), "error", err.Error())
				continue
			}
			w.state = st
			if created > 0 {
				w.wait = pollInterval
			} else if w.wait < maxBackoff {
				w.wait *= 2
			}
			w.next = now.Add(w.wait)
		}
		for f := range seen {
			if !live[f] {
				delete(seen, f) // dropped
			}
		}
	}
}

func statFile(f string) fileState {
	var st fileState
	if fi, err := os.Stat(f); err == nil {
		st.size, st.mtime = fi.Size(), fi.ModTime()
	}
	if fi, err := os.Stat(f + "-wal"); err == nil {
		st.walSize, st.walMtime = fi.Size(), fi.ModTime()
	}
	return st
}

// indexFile indexes every collection table listed in one database file.
func indexFile(ctx context.Context, file string) (int, error) {
	db, err := openOwn(file)
	if err != nil {
		if _, serr := os.Stat(file); serr != nil {
			return 0, nil // dropped meanwhile
		}
		return 0, err
	}
	defer db.Close()
	var exists int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`,
		collectionsTable).Scan(&exists); err != nil || exists == 0 {
		return 0, err
	}
	// the collections whose table lacks our index
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT c.table_name FROM %q c WHERE NOT EXISTS (SELECT 1 `+
		`FROM sqlite_master i WHERE i.type = 'index' AND i.tbl_name = c.table_name AND i.name = c.table_name || ?)`,
		collectionsTable), indexSuffix)
	if err != nil {
		return 0, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	return len(tables), createIndexes(ctx, db, tables)
}

func createIndexes(ctx context.Context, db *sql.DB, tables []string) error {
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+indexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // the collection was dropped meanwhile
			}
			return err
		}
	}
	return nil
}

// openOwn opens an existing database file (never creating one) for our own short work.
func openOwn(file string) (*sql.DB, error) {
	u := url.URL{Scheme: "file", Opaque: file, RawQuery: "mode=rw&_pragma=busy_timeout(10000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}
