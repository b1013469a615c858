package dsclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/storage"
)

// cursorBucket holds, per group ID, how far this client has read the
// group's log, in the mls.Client's own store: the cursor survives a restart
// together with the group state it describes.
const cursorBucket = "dsclient.cursors"

// cursor is a position in a group's log.
type cursor struct {
	Seq uint64 // the last entry handled
	// From is the epoch this client joined the group at: entries of
	// earlier epochs were sent before it was a member and are skipped.
	From uint64
}

func (c *Client) cursor(ctx context.Context, groupID []byte) (cursor, error) {
	var cur cursor
	err := c.mc.Store().View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(cursorBucket, groupID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(b) != 16 {
			return fmt.Errorf("dsclient: stored cursor of %d bytes, want 16", len(b))
		}
		cur = cursor{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
		return nil
	})
	if err != nil {
		return cursor{}, fmt.Errorf("dsclient: reading the cursor: %w", err)
	}
	return cur, nil
}

func (c *Client) setCursor(ctx context.Context, groupID []byte, cur cursor) error {
	b := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, cur.Seq), cur.From)
	if err := c.mc.Store().Update(ctx, func(tx storage.Tx) error { return tx.Put(cursorBucket, groupID, b) }); err != nil {
		return fmt.Errorf("dsclient: saving the cursor: %w", err)
	}
	return nil
}

// Cursor returns the seq of the last entry of the group's log this client
// has handled (0 before the first).
func (c *Client) Cursor(ctx context.Context, groupID []byte) (uint64, error) {
	cur, err := c.cursor(ctx, groupID)
	return cur.Seq, err
}

// ResetCursor makes the client read g's log from its start again, skipping
// the entries of epochs before g's current one: for a group registered
// anew with a service that lost it, or with another service.
func (c *Client) ResetCursor(ctx context.Context, g *mls.Group) error {
	defer c.lock(g.GroupID())()
	return c.setCursor(ctx, g.GroupID(), cursor{From: g.Epoch()})
}

// postedBucket holds, per group ID, the commit this client posted and has
// no answer for yet.
const postedBucket = "dsclient.posted"

func (c *Client) posted(ctx context.Context, groupID []byte) ([]byte, error) {
	var b []byte
	err := c.mc.Store().View(ctx, func(tx storage.Tx) error {
		v, err := tx.Get(postedBucket, groupID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		b = v
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dsclient: reading the posted commit: %w", err)
	}
	return b, nil
}

// setPosted records the commit being posted, or forgets it (nil).
func (c *Client) setPosted(ctx context.Context, groupID, commit []byte) error {
	err := c.mc.Store().Update(ctx, func(tx storage.Tx) error {
		if commit == nil {
			return tx.Delete(postedBucket, groupID)
		}
		return tx.Put(postedBucket, groupID, commit)
	})
	if err != nil {
		return fmt.Errorf("dsclient: recording the posted commit: %w", err)
	}
	return nil
}
