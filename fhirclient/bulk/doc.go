// Package bulk is a client for FHIR Bulk Data Access $export (async kick-off, status polling,
// manifest, file download), built to survive real servers and hostile ones.
//
// Specifications:
//   - Bulk Data Access 3.0.0 (STU3), export: https://hl7.org/fhir/uv/bulkdata/STU3/export.html
//     (sections "_typeFilter Query Parameter", "Server Capability Documentation", "Bulk Data
//     Output File Organization", "Attachments")
//   - Bulk Data Access 2.0.0: https://hl7.org/fhir/uv/bulkdata/STU2/export.html
//   - Bulk Data Access 1.0.0: https://hl7.org/fhir/uv/bulkdata/STU1/export.html
//   - FHIR Asynchronous Request Pattern (4.0.0 ballot): https://build.fhir.org/ig/HL7/bulk-data/
//   - RFC 9110 §10.2.3 Retry-After, §14 Range requests
//
// The flow has three layers, usable separately:
//
//  1. [Client.Kickoff] starts an export (system, all-patients or group level; GET by default, POST
//     with a Parameters body when a patient list is given or asked for) and returns a [Job].
//  2. A [Job] is a small persistable record (json.Marshal it; [Client.ResumeJob] brings it back in
//     another process). [Job.Status] polls once, [Job.Wait] polls until the [Manifest] is ready,
//     honouring Retry-After with a floor and a cap, and [Job.Cancel] deletes the job.
//  3. [Exporter] runs a whole export into a directory: bounded parallel streaming downloads with
//     gzip, byte-range resume, stall fail-over, per-line validation, the bulk-data-client
//     log.ndjson, a resume state file, and DELETE of the job when done. [Client.Resources] and
//     [Decode] stream one output file as raw or typed resources in constant memory.
//
// Around them: [Client.Capabilities] reads the CapabilityStatement so that an export the server
// does not declare is refused before the kick-off (Exporter.CheckCapabilities, BULK-34);
// [TypeFilter] re-applies a _typeFilter on the client, since servers may ignore it: the
// Exporter's validation pass counts and reports the resources that do not match, or drops them
// with Exporter.Filter (BULK-08); [Client.Blocks] and [Exporter.Blocks] read output organised by
// a resource type (organizeOutputBy) as blocks, following continuesInFile across files (BULK-29);
// [Client.FetchAttachment] fetches DocumentReference attachments ([AttachmentURLs]) with the
// token only where it belongs (BULK-30).
//
// Vendor profiles: [Client.SetProfile] applies a smart.Profile (CONV-5): Oracle Health's
// Retry-After cap, CMS AB2D's minimum poll interval, CMS BCDA's transient file 404s, HAPI's 404 to
// the DELETE of a finished job, the _type style and the VA's X-RateLimit-* headers.
//
// Security (CONVENTIONS.md CONV-1): the access token travels only to the FHIR base origin and to
// Client.TrustedOrigins. A status URL, manifest page or token-protected file elsewhere is refused
// with an error naming its origin; when the manifest says requiresAccessToken is false the files
// are fetched with Client.PlainClient, which never carries a token. File URLs must be https (or
// loopback http); file:, data:, link-local and metadata addresses are refused. Server text
// (X-Progress, diagnostics) is sanitised before it reaches an error or a log.
//
// Data is passed through untouched: resources are written as the server sent them, references
// relative or absolute (BULK-35). A group export's _since may include older resources of members
// added to the group since (BULK-33); use the manifest's transactionTime (Result.TransactionTime)
// as the next _since (BULK-19).
//
// Resume strategy for gzip: a first request asks for Accept-Encoding: gzip and decodes on the
// fly; the file on disk holds decoded bytes. A resumed request asks for the decoded (identity)
// representation with Range: bytes=N-, where N is the decoded offset. A 206 whose Content-Range
// starts at N is appended; a 200, or a 206 that is still gzip-encoded or starts elsewhere, means
// the server does not honour ranges of the identity encoding: the body is read from the start and
// the first N decoded bytes are discarded, so the output is byte-exact either way.
package bulk
