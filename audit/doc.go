// Package audit is the one place where elevate writes its audit records: one
// record for every decision on the proxied path and every lifecycle change
// (requests, approvals, policies, control settings).
//
// # The file
//
// Records are appended to a JSON-lines file (Config.Path, created 0600 in a
// directory created 0700). Each line is one Record. When appending a record
// would take the file beyond Config.MaxBytes, the file is renamed to PATH.N,
// where N is one more than the highest number already used, and a new PATH is
// started: PATH.1 is the oldest file, then PATH.2, and so on, and PATH is the
// newest. Rotated files are never renamed again nor removed by this package.
// A record larger than MaxBytes is written alone into a fresh file. An
// exclusive lock on PATH.lock keeps a second writer, in this process or
// another, from forking the chain.
//
// Write returns only after the record's line is on disk (fsync; on Linux
// fdatasync). Concurrent writers share fsyncs: a single writer goroutine
// takes every record waiting at that moment, appends them all, fsyncs once
// and then answers each caller (group commit). Append writes a record in the
// same order but returns once it is written: the next fsync, of a Write or
// at most Config.AppendSyncDelay later, makes it durable. When writing fails,
// every record of that batch fails with ErrUnavailable and the file is cut
// back to its last good length; when syncing fails, it is cut back to what
// the last good fsync made durable. It never holds a record of a failed
// batch, nor a partial line.
//
// # The hash chain
//
// Every record carries Seq (1 for the first record ever written, then +1 per
// record, across rotated files), Prev (the Hash of the record before it, or
// Genesis, 64 "0" characters, for Seq 1) and Hash. The chain runs on from one
// file into the next: the first record of PATH.2 has Prev set to the Hash of
// the last record of PATH.1.
//
// The canonical bytes C of a record are its JSON encoding by Go's
// encoding/json (the field order of Record, default escaping) with the "hash"
// member left out. Hash is the lowercase hex SHA-256 of C; since "prev" is a
// member of C, the hash covers Prev as well. On disk every line ends with the
// "hash" member, so a line is C with its closing brace replaced by
//
//	,"hash":"<64 hex digits>"}
//
// followed by "\n". To re-check a log in any language, for each line in
// order (files oldest first):
//
//  1. the line must end with "\n", and before it with ,"hash":"H"} where H is
//     64 lowercase hex digits;
//  2. C is the line without that 75-byte suffix (and the "\n"), followed by "}";
//  3. SHA-256(C) in lowercase hex must equal H;
//  4. parsed as JSON, C must hold "seq" equal to the previous record's seq
//     plus one (1 for the very first record) and "prev" equal to the
//     previous record's H (Genesis for the first).
//
// Verify does exactly this. It detects an edited field, a deleted, swapped,
// inserted or truncated line and a file missing from a rotated set, and
// names the file and line of the first record that fails. A chain cannot
// show that records were removed from its end: keep Report.LastHash (or
// Report.Records) elsewhere to detect that.
//
// # Reading
//
// Query scans the current file and then the rotated files, newest record
// first, and pages with an opaque cursor. It reads only records that are
// already durable and does not check hashes (Verify does).
package audit
