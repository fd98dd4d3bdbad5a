package store

// Hooks for the external tests: the member record and its codec, and the
// migration's chunk size.
type Member = member

var (
	EncodeMember = encodeMember
	DecodeMember = decodeMember
	MigrateChunk = &migrateChunk
)
