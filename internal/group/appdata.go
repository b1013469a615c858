package group

import (
	"bytes"
	"sort"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// This file holds the proposal types of draft-ietf-mls-extensions
// (../shared/spec/draft-ietf-mls-extensions.md) that change the group:
// SelfRemove ("SelfRemove Proposal") and AppDataUpdate ("Updating
// Application Data in the GroupContext"). Their code points are the
// draft's suggested values ("IANA Considerations", "MLS Proposal Types").

const (
	// ProposalAppDataUpdate is app_data_update (suggested 0x0008):
	// External: Y, Path Required: N.
	ProposalAppDataUpdate message.ProposalType = 0x0008
	// ProposalSelfRemove is self_remove (suggested 0x000a): External: N,
	// Path Required: Y.
	ProposalSelfRemove message.ProposalType = 0x000a

	// ExtensionAppDataDictionary is the app_data_dictionary extension
	// (suggested 0x0006).
	ExtensionAppDataDictionary message.ExtensionType = 0x0006
)

// Sections of the draft, as the Section of a *ValidationError.
const (
	secAppData    = "draft-ietf-mls-extensions, Updating Application Data in the GroupContext"
	secSelfRemove = "draft-ietf-mls-extensions, SelfRemove Proposal"
)

// AppDataUpdateOperation is the op of an AppDataUpdate proposal.
type AppDataUpdateOperation uint8

// The AppDataUpdateOperation values; 0 is invalid.
const (
	AppDataUpdateOp AppDataUpdateOperation = 1 // update
	AppDataRemoveOp AppDataUpdateOperation = 2 // remove
)

// AppDataUpdate is the body of an AppDataUpdate proposal:
//
//	struct {
//	    ComponentID component_id;
//	    AppDataUpdateOperation op;
//	    select (AppDataUpdate.op) {
//	        case update: opaque update<V>;
//	        case remove: struct{};
//	    };
//	} AppDataUpdate;
type AppDataUpdate struct {
	Component uint16
	Op        AppDataUpdateOperation
	Update    []byte // op update only
}

// Marshal encodes the body.
func (u *AppDataUpdate) Marshal() ([]byte, error) {
	e := wire.NewEncoder(nil)
	e.U16(u.Component)
	e.U8(uint8(u.Op))
	if u.Op == AppDataUpdateOp {
		e.Opaque(u.Update)
	}
	return e.Bytes()
}

// ParseAppDataUpdate decodes the body of an AppDataUpdate proposal. An op
// other than update or remove, a short body or trailing bytes are a
// *ValidationError of rule AppDataUpdateMalformed.
func ParseAppDataUpdate(b []byte) (*AppDataUpdate, error) {
	d := wire.NewDecoder(b)
	d.Struct("AppDataUpdate")
	u := &AppDataUpdate{Component: d.U16("component_id"), Op: AppDataUpdateOperation(d.U8("op"))}
	if d.Err() == nil {
		switch u.Op {
		case AppDataUpdateOp:
			u.Update = d.Opaque("update")
		case AppDataRemoveOp:
		default:
			d.Failf("op", "operation %d is neither update(1) nor remove(2)", u.Op)
		}
	}
	if err := d.Finish(); err != nil {
		return nil, invalidErr("AppDataUpdateMalformed", secAppData, err, "AppDataUpdate proposal")
	}
	return u, nil
}

// AppDataFunc is the application logic of the components (the draft:
// "Provide the application logic registered to the component_id value
// with the content of the update field from each proposal, in the order
// specified"): given a component's current data (present false if the
// dictionary has no entry) and the updates of one commit, it returns the
// new data, or an error if the component is unknown or the updates
// invalid, which makes the commit invalid.
type AppDataFunc func(component uint16, current []byte, present bool, updates [][]byte) ([]byte, error)

// dictEntry is one ComponentData of an AppDataDictionary.
type dictEntry struct {
	id   uint16
	data []byte
}

func parseDict(b []byte) ([]dictEntry, error) {
	d := wire.NewDecoder(b)
	d.Struct("AppDataDictionary")
	var out []dictEntry
	d.Vector("component_data", func(d *wire.Decoder) {
		id := d.U16("component_id")
		data := d.Opaque("data")
		if d.Err() != nil {
			return
		}
		if n := len(out); n > 0 && out[n-1].id >= id {
			d.Failf("component_id", "component 0x%04x after 0x%04x: entries must be sorted, one per component", id, out[n-1].id)
			return
		}
		out = append(out, dictEntry{id, data})
	})
	return out, d.Finish()
}

func marshalDict(ents []dictEntry) ([]byte, error) {
	e := wire.NewEncoder(nil)
	e.Vector(func(e *wire.Encoder) {
		for _, c := range ents {
			e.U16(c.id)
			e.Opaque(c.data)
		}
	})
	return e.Bytes()
}

// dictExtension returns the encoded app_data_dictionary of exts, or nil.
func dictExtension(exts []message.Extension) []byte {
	for i := range exts {
		if exts[i].Type == ExtensionAppDataDictionary {
			return exts[i].Data
		}
	}
	return nil
}

// checkGCEAppData enforces the draft's rule that when AppDataUpdate is in
// the required_capabilities' proposal_types, a GroupContextExtensions
// proposal must not add, remove or modify app_data_dictionary.
func checkGCEAppData(rc *message.RequiredCapabilities, old, new []message.Extension) error {
	if rc == nil || !contains(rc.Proposals, ProposalAppDataUpdate) {
		return nil
	}
	o, n := dictExtension(old), dictExtension(new)
	if (o == nil) != (n == nil) || !bytes.Equal(o, n) {
		return invalid("AppDataDictionaryByGCE", secAppData, "GroupContextExtensions proposal changes app_data_dictionary while AppDataUpdate is a required proposal type")
	}
	return nil
}

// applyAppData applies a commit's AppDataUpdate proposals, in commit
// order, to the GroupContext extensions exts (the ones after any
// GroupContextExtensions proposal) and returns the new list (draft-ietf-
// mls-extensions, "Updating Application Data in the GroupContext").
func applyAppData(exts []message.Extension, ups []*AppDataUpdate, fn AppDataFunc) ([]message.Extension, error) {
	var ents []dictEntry
	at := -1
	for i := range exts {
		if exts[i].Type == ExtensionAppDataDictionary {
			var err error
			if ents, err = parseDict(exts[i].Data); err != nil {
				return nil, invalidErr("AppDataDictionaryMalformed", secAppData, err, "GroupContext app_data_dictionary")
			}
			at = i
		}
	}
	type list struct {
		removes int
		updates [][]byte
	}
	byID := map[uint16]*list{}
	var order []uint16
	for _, u := range ups {
		l := byID[u.Component]
		if l == nil {
			l = &list{}
			byID[u.Component] = l
			order = append(order, u.Component)
		}
		if u.Op == AppDataRemoveOp {
			l.removes++
		} else {
			l.updates = append(l.updates, u.Update)
		}
	}
	for _, id := range order {
		l := byID[id]
		i := sort.Search(len(ents), func(i int) bool { return ents[i].id >= id })
		present := i < len(ents) && ents[i].id == id
		switch {
		case l.removes > 1:
			return nil, invalid("AppDataUpdateRemoveTwice", secAppData, "several AppDataUpdate proposals remove component 0x%04x", id)
		case l.removes == 1 && len(l.updates) > 0:
			return nil, invalid("AppDataUpdateMixed", secAppData, "AppDataUpdate proposals both update and remove component 0x%04x", id)
		case l.removes == 1:
			if !present {
				return nil, invalid("AppDataUpdateRemoveAbsent", secAppData, "AppDataUpdate removes component 0x%04x, which has no data", id)
			}
			ents = append(ents[:i:i], ents[i+1:]...)
		default:
			var cur []byte
			if present {
				cur = ents[i].data
			}
			nd, err := fn(id, bytes.Clone(cur), present, l.updates)
			if err != nil {
				return nil, invalidErr("AppDataUpdateRejected", secAppData, err, "AppDataUpdate of component 0x%04x", id)
			}
			if nd == nil {
				nd = []byte{}
			}
			if present {
				ents[i].data = nd
			} else {
				ents = append(ents[:i:i], append([]dictEntry{{id, nd}}, ents[i:]...)...)
			}
		}
	}
	data, err := marshalDict(ents)
	if err != nil {
		return nil, err
	}
	out := append([]message.Extension(nil), exts...)
	if at < 0 {
		// "If no app_data_dictionary extension is present in the
		// GroupContext, add one to the end of the extensions list."
		return append(out, message.Extension{Type: ExtensionAppDataDictionary, Data: data}), nil
	}
	out[at] = message.Extension{Type: ExtensionAppDataDictionary, Data: data}
	return out, nil
}

// ReplaceData is the default AppDataFunc: every component is known, and
// each update replaces the component's data, so the last one wins.
func ReplaceData(_ uint16, _ []byte, _ bool, updates [][]byte) ([]byte, error) {
	return bytes.Clone(updates[len(updates)-1]), nil
}
