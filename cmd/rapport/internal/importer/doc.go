// Package importer loads purchase histories from files into the profile
// service for `rapport import`.
//
// A run has three steps, and the order is what makes it safe to repeat:
//
//  1. Read the whole file and turn every row into a purchase or a refund, or
//     a rejection with its line number. Nothing is sent while a single row is
//     unread, because refunds are matched against the file's purchases and
//     the mapping must be checked before the service sees anything.
//  2. Create the file's customers (BatchCreateCustomers is idempotent).
//  3. Record the purchases, and only once every purchase is acknowledged,
//     the refunds that point at them (BatchRecordEvents, several batches in
//     flight).
//
// Event ids are derived from row content (see idCounter), never from row
// numbers, so importing the same file twice records nothing new, and a file
// with rows inserted or reordered still recognises the rows already loaded.
package importer
