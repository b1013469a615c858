package mls

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// The safe exporter and Safe AAD of the MLS extensions draft
// (../shared/spec/draft-ietf-mls-extensions.md, "Exported Secrets" and
// "Safe Additional Authenticated Data (AAD)").

// SafeExportSecret returns the current epoch's exported secret for a
// component (draft-ietf-mls-extensions, "Exported Secrets"): the leaf
// secret of leaf componentID in the Exporter Tree, a tree of 2^16 leaves
// shaped like the secret tree of RFC 9420, Section 9, whose root is
// application_export_secret = DeriveSecret(epoch_secret,
// "application_export"). The secret is KDF.Nh bytes. Every member gets the
// same value in the same epoch, different components get independent
// values, and each new epoch gives new ones.
//
// Forward security is at epoch granularity: application_export_secret is
// kept with the epoch's other secrets and deleted with them when the epoch
// ends (and after MaxPastEpochs for past epochs it is never kept), so a
// component's secret can be asked for again within its epoch. The draft's
// per-component deletion within an epoch (marking the leaf consumed and
// deleting its source nodes) is not done.
//
// A group whose current epoch was stored by a version of this library that
// predates the safe exporter returns ErrUnsupported until the next epoch.
func (g *Group) SafeExportSecret(component ComponentID) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkHandle(); err != nil {
		return nil, err
	}
	if g.public {
		return nil, fmt.Errorf("%w: a PublicGroup holds no secrets", ErrInvalidArgument)
	}
	out, err := g.st.keys.SafeExportSecret(uint16(component))
	if errors.Is(err, keyschedule.ErrNoApplicationExport) {
		return nil, &classError{ErrUnsupported, err}
	}
	return out, err
}

// SafeAADItem is one item of a SafeAAD (draft-ietf-mls-extensions, "Safe
// Additional Authenticated Data (AAD)"):
//
//	struct {
//	    ComponentID component_id;
//	    opaque aad_item_data<V>;
//	} SafeAADItem;
//
//	struct {
//	    SafeAADItem aad_items<V>;
//	} SafeAAD;
type SafeAADItem struct {
	Component ComponentID
	Data      []byte
}

// MarshalSafeAAD encodes items as a SafeAAD, the whole authenticated_data
// of a message in a group that uses Safe AAD. The draft requires the items
// sorted in increasing order of component ID; this library also allows one
// item per component, so anything else fails with ErrInvalidArgument. No
// items gives the zero-length vector the draft asks for.
func MarshalSafeAAD(items []SafeAADItem) ([]byte, error) {
	for i := 1; i < len(items); i++ {
		if items[i-1].Component >= items[i].Component {
			return nil, fmt.Errorf("%w: SafeAAD items must be in increasing order of component ID, one per component (0x%04x then 0x%04x)", ErrInvalidArgument, uint16(items[i-1].Component), uint16(items[i].Component))
		}
	}
	e := wire.NewEncoder(nil)
	e.Vector(func(e *wire.Encoder) {
		for _, it := range items {
			e.U16(uint16(it.Component))
			e.Opaque(it.Data)
		}
	})
	return e.Bytes()
}

// ParseSafeAAD decodes an authenticated_data field framed as a SafeAAD.
// Items out of order, a repeated component, a truncated item and trailing
// bytes fail with ErrMalformed.
func ParseSafeAAD(authenticatedData []byte) ([]SafeAADItem, error) {
	d := wire.NewDecoder(authenticatedData)
	d.Struct("SafeAAD")
	out := []SafeAADItem{}
	d.Vector("aad_items", func(d *wire.Decoder) {
		id := ComponentID(d.U16("component_id"))
		data := d.Opaque("aad_item_data")
		if d.Err() != nil {
			return
		}
		if n := len(out); n > 0 && out[n-1].Component >= id {
			d.Failf("component_id", "item of component 0x%04x after 0x%04x: items must be sorted, one per component", uint16(id), uint16(out[n-1].Component))
			return
		}
		out = append(out, SafeAADItem{Component: id, Data: bytes.Clone(data)})
	})
	if err := d.Finish(); err != nil {
		return nil, malformed(fmt.Errorf("mls: SafeAAD: %w", err))
	}
	return out, nil
}

// SafeAADItemData returns the data of component c's item, if any.
func SafeAADItemData(items []SafeAADItem, c ComponentID) ([]byte, bool) {
	for _, it := range items {
		if it.Component == c {
			return bytes.Clone(it.Data), true
		}
	}
	return nil, false
}

// UsesSafeAAD reports whether the group's GroupContext carries the
// safe_aad component in its app_data_dictionary (even with an empty list),
// in which case every message's authenticated_data is a SafeAAD
// (draft-ietf-mls-extensions, "Negotiating Extensions and Components").
func (g *Group) UsesSafeAAD() (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok, err := componentsOf(g.st.GC.Extensions, ComponentSafeAAD)
	return ok, err
}

// SealSafe encrypts an application message whose authenticated_data is
// the SafeAAD of items (see Seal). It fails with ErrInvalidArgument if the
// group does not use Safe AAD (UsesSafeAAD) or the items are not sorted.
func (g *Group) SealSafe(ctx context.Context, plaintext []byte, items []SafeAADItem) (*Message, error) {
	uses, err := g.UsesSafeAAD()
	if err != nil {
		return nil, err
	}
	if !uses {
		return nil, fmt.Errorf("%w: the group's GroupContext has no safe_aad component", ErrInvalidArgument)
	}
	aad, err := MarshalSafeAAD(items)
	if err != nil {
		return nil, err
	}
	return g.Seal(ctx, plaintext, aad)
}

// SafeAAD parses the message's authenticated_data as a SafeAAD, for a
// group that uses Safe AAD. A sender that did not frame it fails with
// ErrMalformed; the message itself was authenticated all the same, and the
// application decides whether to drop it.
func (p *Processed) SafeAAD() ([]SafeAADItem, error) {
	return ParseSafeAAD(p.AuthenticatedData)
}

// Last-resort key packages. RFC 9420, Section 16.8 allows them but names no
// marker. Two exist:
//
//   - OpenMLS's last_resort KeyPackage extension, type 0x000a
//     (LastResortExtension), with empty data;
//   - the MLS extensions draft's last_resort_key_package component
//     (ComponentLastResortKeyPackage, 0x0004) with empty data in the key
//     package's app_data_dictionary extension (0x0006).
//
// KeyPackage.IsLastResort accepts both. NewKeyPackage with LastResort set
// emits OpenMLS's form by default: OpenMLS is the deployed implementation
// that marks last-resort key packages, its code point is what delivery
// services and clients built on it recognise today, and the draft's code
// points (0x0006 for app_data_dictionary) are still only "suggested", not
// assigned by IANA. KeyPackageOptions.LastResortForm selects the draft's
// form, or both.

// LastResortForm says how NewKeyPackage marks a last-resort key package.
type LastResortForm uint8

const (
	// LastResortOpenMLS is the last_resort KeyPackage extension 0x000a of
	// OpenMLS (the default).
	LastResortOpenMLS LastResortForm = iota
	// LastResortDraft is the last_resort_key_package component in the
	// app_data_dictionary KeyPackage extension of draft-ietf-mls-extensions.
	LastResortDraft
	// LastResortBoth carries both markers, for a mixed population of
	// receivers.
	LastResortBoth
)

// addLastResort marks a key package's extensions and leaf capabilities as
// last resort in form f.
func addLastResort(f LastResortForm, exts []message.Extension, caps *message.Capabilities) ([]message.Extension, error) {
	if f > LastResortBoth {
		return nil, fmt.Errorf("%w: unknown LastResortForm %d", ErrInvalidArgument, f)
	}
	if f == LastResortOpenMLS || f == LastResortBoth {
		if _, ok := message.FindExtension(exts, LastResortExtension); !ok {
			exts = append(exts, message.Extension{Type: LastResortExtension, Data: []byte{}})
		}
		caps.Extensions = appendUnique(caps.Extensions, LastResortExtension)
	}
	if f == LastResortDraft || f == LastResortBoth {
		dict, ok, err := FindAppDataDictionary(fromWireExtensions(exts))
		if err != nil {
			return nil, fmt.Errorf("%w: key package extensions: %w", ErrInvalidArgument, err)
		}
		dict = dict.Set(ComponentLastResortKeyPackage, []byte{})
		b, err := dict.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if ok {
			for i := range exts {
				if exts[i].Type == ExtensionAppDataDictionary {
					exts[i].Data = b
				}
			}
		} else {
			exts = append(exts, message.Extension{Type: ExtensionAppDataDictionary, Data: b})
		}
		caps.Extensions = appendUnique(caps.Extensions, ExtensionAppDataDictionary)
	}
	return exts, nil
}

// isLastResort reports whether key package extensions carry either
// last-resort marker. A dictionary that does not decode marks nothing.
func isLastResort(exts []message.Extension) bool {
	if _, ok := message.FindExtension(exts, LastResortExtension); ok {
		return true
	}
	dict, ok, err := FindAppDataDictionary(fromWireExtensions(exts))
	if err != nil || !ok {
		return false
	}
	_, ok = dict.Get(ComponentLastResortKeyPackage)
	return ok
}
