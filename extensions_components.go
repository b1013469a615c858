package mls

import (
	"bytes"
	"fmt"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// This file implements the component machinery of the MLS extensions
// draft (../shared/spec/draft-ietf-mls-extensions.md, "The Safe Application
// Interface"): component IDs, the app_data_dictionary extension, the
// ComponentsList of app_components and safe_aad, and component negotiation
// through leaf nodes and the GroupContext.
//
// The draft's code points are "suggested", not yet assigned by IANA; the
// constants below use them.

// ComponentID identifies an application component (draft-ietf-mls-
// extensions, "Component IDs"): 0x0000-0x7FFF are registered, 0x8000-0xFFFF
// are private use.
type ComponentID uint16

// Components of the draft's initial "MLS Component Types" registry.
const (
	ComponentAppComponents        ComponentID = 0x0001 // app_components (LN, GC)
	ComponentSafeAAD              ComponentID = 0x0002 // safe_aad (LN, GC)
	ComponentContentMediaTypes    ComponentID = 0x0003 // content_media_types (LN, GC)
	ComponentLastResortKeyPackage ComponentID = 0x0004 // last_resort_key_package (KP)
	ComponentAppAck               ComponentID = 0x0005 // app_ack (AE)
)

// ExtensionAppDataDictionary is the app_data_dictionary extension type
// (draft-ietf-mls-extensions, IANA considerations, suggested 0x0006). It
// may appear in KeyPackage, LeafNode, GroupContext and GroupInfo
// extensions; a leaf that carries it must list it in its capabilities
// (RFC 9420, Section 7.3), and every member must list it before a group
// puts it in its GroupContext (Section 12.1.7).
const ExtensionAppDataDictionary = 0x0006

// ComponentData is one entry of an AppDataDictionary.
type ComponentData struct {
	ID   ComponentID
	Data []byte
}

// AppDataDictionary is the content of the app_data_dictionary extension:
//
//	struct {
//	    ComponentID component_id;
//	    opaque data<V>;
//	} ComponentData;
//
//	struct {
//	    ComponentData component_data<V>;
//	} AppDataDictionary;
//
// Its entries are sorted by component ID, at most one per ID (the draft's
// MUST); Set and Remove keep it so, MarshalBinary and
// ParseAppDataDictionary reject anything else.
type AppDataDictionary []ComponentData

// ParseAppDataDictionary decodes the extension_data of an
// app_data_dictionary extension. Entries out of order, a repeated
// component ID and trailing bytes fail with ErrMalformed.
func ParseAppDataDictionary(b []byte) (AppDataDictionary, error) {
	d := wire.NewDecoder(b)
	d.Struct("AppDataDictionary")
	out := AppDataDictionary{}
	d.Vector("component_data", func(d *wire.Decoder) {
		id := ComponentID(d.U16("component_id"))
		data := d.Opaque("data")
		if d.Err() != nil {
			return
		}
		if n := len(out); n > 0 && out[n-1].ID >= id {
			d.Failf("component_id", "component 0x%04x after 0x%04x: entries must be sorted, one per component", uint16(id), uint16(out[n-1].ID))
			return
		}
		out = append(out, ComponentData{ID: id, Data: bytes.Clone(data)})
	})
	if err := d.Finish(); err != nil {
		return nil, malformed(fmt.Errorf("mls: app_data_dictionary: %w", err))
	}
	return out, nil
}

// MarshalBinary encodes the dictionary as extension_data; unsorted or
// repeated entries fail with ErrInvalidArgument.
func (a AppDataDictionary) MarshalBinary() ([]byte, error) {
	for i := 1; i < len(a); i++ {
		if a[i-1].ID >= a[i].ID {
			return nil, fmt.Errorf("%w: app_data_dictionary entries must be sorted by component ID, one per component (0x%04x then 0x%04x)", ErrInvalidArgument, uint16(a[i-1].ID), uint16(a[i].ID))
		}
	}
	e := wire.NewEncoder(nil)
	e.Vector(func(e *wire.Encoder) {
		for _, c := range a {
			e.U16(uint16(c.ID))
			e.Opaque(c.Data)
		}
	})
	return e.Bytes()
}

// Extension returns the dictionary as an app_data_dictionary extension.
func (a AppDataDictionary) Extension() (Extension, error) {
	b, err := a.MarshalBinary()
	if err != nil {
		return Extension{}, err
	}
	return Extension{Type: ExtensionAppDataDictionary, Data: b}, nil
}

// Get returns a copy of the data of component id.
func (a AppDataDictionary) Get(id ComponentID) ([]byte, bool) {
	for _, c := range a {
		if c.ID == id {
			return bytes.Clone(c.Data), true
		}
	}
	return nil, false
}

// Set returns the dictionary with component id's data set to data,
// inserted in order if new. a itself is not modified.
func (a AppDataDictionary) Set(id ComponentID, data []byte) AppDataDictionary {
	out := make(AppDataDictionary, 0, len(a)+1)
	done := false
	for _, c := range a {
		switch {
		case c.ID == id:
			out = append(out, ComponentData{ID: id, Data: bytes.Clone(data)})
			done = true
			continue
		case c.ID > id && !done:
			out = append(out, ComponentData{ID: id, Data: bytes.Clone(data)})
			done = true
		}
		out = append(out, c)
	}
	if !done {
		out = append(out, ComponentData{ID: id, Data: bytes.Clone(data)})
	}
	return out
}

// Remove returns the dictionary without component id, and whether it was
// there. a itself is not modified.
func (a AppDataDictionary) Remove(id ComponentID) (AppDataDictionary, bool) {
	out := make(AppDataDictionary, 0, len(a))
	found := false
	for _, c := range a {
		if c.ID == id {
			found = true
			continue
		}
		out = append(out, c)
	}
	return out, found
}

// FindAppDataDictionary returns the app_data_dictionary in a list of
// extensions (Group.Extensions, LeafNode.Extensions, KeyPackage.Extensions,
// GroupInfo extensions), and whether there is one. A repeated extension or
// a dictionary that does not decode fails with ErrMalformed.
func FindAppDataDictionary(exts []Extension) (AppDataDictionary, bool, error) {
	var found *Extension
	for i := range exts {
		if exts[i].Type != ExtensionAppDataDictionary {
			continue
		}
		if found != nil {
			return nil, false, malformed(fmt.Errorf("mls: app_data_dictionary appears twice (RFC 9420, Section 13.4)"))
		}
		found = &exts[i]
	}
	if found == nil {
		return nil, false, nil
	}
	d, err := ParseAppDataDictionary(found.Data)
	if err != nil {
		return nil, false, err
	}
	return d, true, nil
}

// ComponentsList is the body of the app_components and safe_aad components
// (draft-ietf-mls-extensions, "Negotiating Extensions and Components"):
//
//	struct {
//	    ComponentID component_ids<V>;
//	} ComponentsList;
//
// In a LeafNode's app_data_dictionary it lists the components the member
// supports; in the GroupContext's, the components every member must
// support.
type ComponentsList []ComponentID

// MarshalBinary encodes the list; a repeated ID fails with
// ErrInvalidArgument.
func (l ComponentsList) MarshalBinary() ([]byte, error) {
	seen := make(map[ComponentID]bool, len(l))
	for _, id := range l {
		if seen[id] {
			return nil, fmt.Errorf("%w: component 0x%04x listed twice", ErrInvalidArgument, uint16(id))
		}
		seen[id] = true
	}
	e := wire.NewEncoder(nil)
	e.Vector(func(e *wire.Encoder) {
		for _, id := range l {
			e.U16(uint16(id))
		}
	})
	return e.Bytes()
}

// ParseComponentsList decodes a ComponentsList. An odd length, trailing
// bytes or a repeated ID fail with ErrMalformed; unknown IDs, GREASE
// values among them, are kept (the draft: they MUST be ignored, which
// Contains does for GREASE).
func ParseComponentsList(b []byte) (ComponentsList, error) {
	d := wire.NewDecoder(b)
	d.Struct("ComponentsList")
	out := ComponentsList{}
	seen := map[ComponentID]bool{}
	d.Vector("component_ids", func(d *wire.Decoder) {
		id := ComponentID(d.U16("component_id"))
		if d.Err() != nil {
			return
		}
		if seen[id] {
			d.Failf("component_id", "component 0x%04x listed twice", uint16(id))
			return
		}
		seen[id] = true
		out = append(out, id)
	})
	if err := d.Finish(); err != nil {
		return nil, malformed(fmt.Errorf("mls: ComponentsList: %w", err))
	}
	return out, nil
}

// Contains reports whether the list names id as supported. A GREASE value
// (RFC 9420, Section 13.5; the draft reserves the same values for
// components) is never supported, as message.Supports.
func (l ComponentsList) Contains(id ComponentID) bool {
	return message.Supports(l, id)
}

// componentsOf returns the ComponentsList stored under component c of the
// app_data_dictionary of exts, and whether there is one.
func componentsOf(exts []message.Extension, c ComponentID) (ComponentsList, bool, error) {
	dict, ok, err := FindAppDataDictionary(fromWireExtensions(exts))
	if err != nil || !ok {
		return nil, false, err
	}
	b, ok := dict.Get(c)
	if !ok {
		return nil, false, nil
	}
	l, err := ParseComponentsList(b)
	if err != nil {
		return nil, false, err
	}
	return l, true, nil
}

// SupportedComponents returns the components a leaf supports: the
// app_components list of its app_data_dictionary (draft-ietf-mls-
// extensions, "Negotiating Extensions and Components"); ok is false when it
// has none.
func (l *LeafNode) SupportedComponents() (list ComponentsList, ok bool, err error) {
	return componentsOf(l.ln.Extensions, ComponentAppComponents)
}

// RequiredComponents returns the components every member of the group must
// support: the app_components list of the GroupContext's
// app_data_dictionary; ok is false when the group requires none.
func (g *Group) RequiredComponents() (list ComponentsList, ok bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return componentsOf(g.st.GC.Extensions, ComponentAppComponents)
}

// componentCheck returns the leaf check that component negotiation adds to
// leaf node validation (RFC 9420, Section 7.3) in a group with GroupContext
// extensions gcExts: a leaf must list every required component (those of
// the GroupContext's app_components) in its own app_components, and every
// required Safe AAD component in its safe_aad. It returns nil when the
// group requires nothing, so groups that do not use the draft pay nothing.
// A failure is reported by internal/tree as ErrCapabilities, that is as
// ValSem106 for an Add and ValSem109 for an Update or a commit's leaf.
func componentCheck(gcExts []message.Extension) func(*message.LeafNode) error {
	var reqs [2]ComponentsList
	need := false
	for i, c := range []ComponentID{ComponentAppComponents, ComponentSafeAAD} {
		l, ok, err := componentsOf(gcExts, c)
		if err != nil {
			// A GroupContext whose dictionary does not decode requires
			// something no leaf can show.
			return func(*message.LeafNode) error { return err }
		}
		if ok && len(l) > 0 {
			reqs[i], need = l, true
		}
	}
	if !need {
		return nil
	}
	return func(ln *message.LeafNode) error {
		for i, c := range []ComponentID{ComponentAppComponents, ComponentSafeAAD} {
			if len(reqs[i]) == 0 {
				continue
			}
			have, _, err := componentsOf(ln.Extensions, c)
			if err != nil {
				return err
			}
			for _, id := range reqs[i] {
				if !have.Contains(id) {
					return fmt.Errorf("mls: required component 0x%04x missing from the leaf's %s list (draft-ietf-mls-extensions)", uint16(id), componentName(c))
				}
			}
		}
		return nil
	}
}

func componentName(c ComponentID) string {
	if c == ComponentSafeAAD {
		return "safe_aad"
	}
	return "app_components"
}
