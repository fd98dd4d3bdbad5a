package store

// SetMigrateChunk sets the chunk size of the schema 5 and 6 migrations and returns
// a function that restores it.
func SetMigrateChunk(n int) (restore func()) {
	old := migrateChunk
	migrateChunk = n
	return func() { migrateChunk = old }
}
