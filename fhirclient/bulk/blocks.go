package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"

	gojson "github.com/goccy/go-json"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Block is one resource block of organised output (BULK-29, organizeOutputBy): a Parameters
// header naming a resource of the organising type, then that resource and the resources that
// reference it. A block the server split across files is reassembled.
type Block struct {
	// Header is the Parameters header as first seen.
	Header json.RawMessage
	// Reference is the header's parameter[name=header].valueReference.reference, e.g.
	// "Patient/123" (absolute references are kept as sent).
	Reference string
	// Resources are the resources of the block in file order, across continuation files.
	Resources []json.RawMessage
	// Files names the files the block was read from, in order: more than one when it continues.
	Files []string
}

// blockFile is one organised output file for readBlocks.
type blockFile struct {
	name      string // for errors and Block.Files
	key       string // what another file's continuation names: a manifest URL or a local name
	continues string // key of the file this one's last block continues in, or ""
	resources iter.Seq2[json.RawMessage, error]
}

// Blocks streams the organised output of m (a complete manifest: with a paged one, join the
// pages' Output) as resource blocks, downloading the files in turn with Client.Resources. A file
// whose continuesInFile names another is followed by that file, whose repeated header continues
// the block. Errors: ErrBadBlock for output that breaks the rules (a resource before the first
// header, a continuation that does not continue, a block over MaxBlock, a continuesInFile naming
// no file of m, or a cycle), and the download errors of Resources.
func (c *Client) Blocks(ctx context.Context, m *Manifest) iter.Seq2[*Block, error] {
	files := make([]blockFile, len(m.Output))
	for i, f := range m.Output {
		files[i] = blockFile{name: redactURLString(f.URL), key: f.URL, continues: f.ContinuesInFile, resources: c.Resources(ctx, m, f)}
	}
	return readBlocks(m.OutputOrganizedBy, files, intOr(c.MaxBlock, DefaultMaxBlock))
}

// Blocks reads the organised output of the export in Dir as resource blocks, as Client.Blocks
// does from the server; every output file must be downloaded. It needs only Dir (and Client for
// its MaxBlock, if set).
func (e *Exporter) Blocks() iter.Seq2[*Block, error] {
	return func(yield func(*Block, error) bool) {
		st, err := loadState(e.Dir)
		if err != nil {
			yield(nil, err)
			return
		}
		var files []blockFile
		for _, f := range st.Files {
			if f.Kind != KindOutput {
				continue
			}
			if !f.Done {
				yield(nil, fmt.Errorf("bulk: %s is not downloaded yet (resume the export)", f.Name))
				return
			}
			files = append(files, blockFile{name: f.Name, key: f.Name, continues: f.Continues,
				resources: fileResources(filepath.Join(e.Dir, filepath.FromSlash(f.Name)), f.Name)})
		}
		limit := int64(DefaultMaxBlock)
		if e.Client != nil {
			limit = intOr(e.Client.MaxBlock, DefaultMaxBlock)
		}
		for b, err := range readBlocks(st.OutputOrganizedBy, files, limit) {
			if !yield(b, err) {
				return
			}
		}
	}
}

// fileResources streams the resources of a local NDJSON file, opened when iterated.
func fileResources(path, name string) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		fh, err := os.Open(path)
		if err != nil {
			yield(nil, fmt.Errorf("bulk: %w", err))
			return
		}
		defer fh.Close()
		for raw, err := range ReadNDJSON(fh, "", name) {
			if !yield(raw, err) {
				return
			}
		}
	}
}

func blockErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBlock, fmt.Sprintf(format, a...))
}

// readBlocks assembles blocks from files organised by resource type by, following continuations.
func readBlocks(by string, files []blockFile, limit int64) iter.Seq2[*Block, error] {
	return func(yield func(*Block, error) bool) {
		if by == "" {
			yield(nil, errors.New("bulk: the output is not organised (no outputOrganizedBy): read it with Resources"))
			return
		}
		order, err := chainOrder(files)
		if err != nil {
			yield(nil, err)
			return
		}
		var cur *Block
		var size int64
		for _, i := range order {
			f := files[i]
			continued, first := cur != nil, true // the previous file's last block continues here
			for raw, err := range f.resources {
				if err != nil {
					yield(nil, err)
					return
				}
				ref, isHeader, err := blockHeader(raw, by)
				if err != nil {
					yield(nil, fmt.Errorf("%w (%s)", err, f.name))
					return
				}
				switch {
				case continued && first:
					if isHeader && ref != cur.Reference {
						yield(nil, blockErrorf("%s continues the block of %s but starts with the header of %s", f.name, cur.Reference, ref))
						return
					}
					cur.Files = append(cur.Files, f.name)
					if isHeader { // the repeated header
						break
					}
					fallthrough // a continuation without the repeated header: still unambiguous
				case !isHeader:
					if cur == nil {
						yield(nil, blockErrorf("%s: a resource before the first block header", f.name))
						return
					}
					if size += int64(len(raw)); size > limit {
						yield(nil, blockErrorf("the block of %s is larger than %d bytes", cur.Reference, limit))
						return
					}
					cur.Resources = append(cur.Resources, raw)
				default:
					if cur != nil && !yield(cur, nil) {
						return
					}
					cur, size = &Block{Header: raw, Reference: ref, Files: []string{f.name}}, 0
				}
				first = false
			}
			if f.continues == "" && cur != nil {
				if !yield(cur, nil) {
					return
				}
				cur = nil
			}
		}
		if cur != nil {
			yield(cur, nil)
		}
	}
}

// chainOrder orders files so that each continuation follows the file it continues, keeping the
// manifest order otherwise.
func chainOrder(files []blockFile) ([]int, error) {
	index := make(map[string]int, len(files))
	for i, f := range files {
		index[f.key] = i
	}
	next := make([]int, len(files))
	target := make([]bool, len(files))
	for i, f := range files {
		next[i] = -1
		if f.continues == "" {
			continue
		}
		j, ok := index[f.continues]
		if !ok {
			return nil, blockErrorf("%s continues in %s, which is not an output file", f.name, redactURLString(f.continues))
		}
		if j == i || target[j] {
			return nil, blockErrorf("%s is continued from two files, or from itself", files[j].name)
		}
		next[i], target[j] = j, true
	}
	order := make([]int, 0, len(files))
	seen := make([]bool, len(files))
	for i := range files {
		if target[i] {
			continue
		}
		for j := i; j >= 0; j = next[j] {
			seen[j] = true
			order = append(order, j)
		}
	}
	if len(order) != len(files) {
		return nil, blockErrorf("the continuesInFile links form a cycle")
	}
	return order, nil
}

// blockHeader reports whether raw is a block header, a Parameters resource with a parameter
// named header whose valueReference names a resource of type by; ref is that reference.
func blockHeader(raw []byte, by string) (ref string, ok bool, err error) {
	var h resourceHead
	if err := gojson.UnmarshalOf(raw, &h, gojson.DecodeNoCopyString()); err != nil || h.ResourceType != "Parameters" {
		return "", false, nil
	}
	var p struct {
		Parameter []struct {
			Name           string `json:"name"`
			ValueReference *struct {
				Reference string `json:"reference"`
			} `json:"valueReference"`
		} `json:"parameter"`
	}
	if err := gojson.Unmarshal(raw, &p); err != nil {
		return "", false, blockErrorf("a Parameters resource: %v", err)
	}
	for _, param := range p.Parameter {
		if param.Name != "header" {
			continue
		}
		if param.ValueReference == nil || param.ValueReference.Reference == "" {
			return "", false, blockErrorf("a block header without a valueReference")
		}
		ref = param.ValueReference.Reference
		if t := referenceType(ref); t != by {
			return "", false, blockErrorf("the block header names %s, not a %s", httpx.SanitizeText(truncate(ref, 100)), by)
		}
		return ref, true, nil
	}
	return "", false, nil // a Parameters resource of the block itself
}

// referenceType returns the resource type of a relative or absolute reference
// ("Patient/1", "https://ehr/fhir/Patient/1/_history/2").
func referenceType(ref string) string {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}
