package storage

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ prefix, want []byte }{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte{0xff}, nil},
		{[]byte{0xff, 0xff, 0xff}, nil},
		{[]byte{0x00}, []byte{0x01}},
		{[]byte("ab"), []byte("ac")},
		{[]byte{0x01, 0xff}, []byte{0x02}},
		{[]byte{0x01, 0xff, 0xff}, []byte{0x02}},
		{[]byte{0x01, 0xfe, 0xff}, []byte{0x01, 0xff}},
		{[]byte{0xfe}, []byte{0xff}},
		{[]byte{0xff, 0x00}, []byte{0xff, 0x01}},
	} {
		if got := PrefixEnd(c.prefix); !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", c.prefix, got, c.want)
		}
	}
	// The result never aliases the argument.
	p := []byte("ab")
	end := PrefixEnd(p)
	end[0] = 'z'
	if string(p) != "ab" {
		t.Errorf("PrefixEnd changed its argument to %q", p)
	}
}

func TestCheckBucket(t *testing.T) {
	ok := []string{"a", "groups", "é", strings.Repeat("x", MaxBucketLen)}
	for _, b := range ok {
		if err := CheckBucket(b); err != nil {
			t.Errorf("CheckBucket(%q): %v", b, err)
		}
	}
	bad := []string{"", "a\x00", "\xc3", strings.Repeat("x", MaxBucketLen+1)}
	for _, b := range bad {
		if err := CheckBucket(b); !errors.Is(err, ErrInvalidBucket) {
			t.Errorf("CheckBucket(%q) = %v, want ErrInvalidBucket", b, err)
		}
	}
}

func TestCheckKeyValue(t *testing.T) {
	if err := CheckKey(nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("CheckKey(nil) = %v", err)
	}
	if err := CheckKey(make([]byte, MaxKeySize)); err != nil {
		t.Errorf("CheckKey(MaxKeySize) = %v", err)
	}
	if err := CheckKey(make([]byte, MaxKeySize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckKey(MaxKeySize+1) = %v", err)
	}
	if err := CheckPrefix(nil); err != nil {
		t.Errorf("CheckPrefix(nil) = %v", err)
	}
	if err := CheckPrefix(make([]byte, MaxKeySize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckPrefix(MaxKeySize+1) = %v", err)
	}
	if err := CheckValue(0); err != nil {
		t.Errorf("CheckValue(0) = %v", err)
	}
	if err := CheckValue(MaxValueSize); err != nil {
		t.Errorf("CheckValue(MaxValueSize) = %v", err)
	}
	if err := CheckValue(MaxValueSize + 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckValue(MaxValueSize+1) = %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	err := error(&Error{Op: "get", Bucket: "groups", Key: []byte{0xde, 0xad}, Err: ErrNotFound})
	if got, want := err.Error(), `storage: get in bucket "groups" key dead (2 bytes): key not found`; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Error("errors.Is(ErrNotFound) is false")
	}
	long := &Error{Op: "put", Bucket: "b", Key: bytes.Repeat([]byte{0xab}, 40), Err: ErrTooLarge}
	if got, want := long.Error(), `storage: put in bucket "b" key abababababababababababababababab... (40 bytes): key or value too large`; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	noKey := &Error{Op: "update", Err: ErrClosed}
	if got, want := noKey.Error(), "storage: update: store is closed"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestStatsSub(t *testing.T) {
	a := Stats{Txs: 5, Puts: 10, Deletes: 3, BytesWritten: 1000}
	b := Stats{Txs: 2, Puts: 4, Deletes: 1, BytesWritten: 400}
	if got, want := a.Sub(b), (Stats{Txs: 3, Puts: 6, Deletes: 2, BytesWritten: 600}); got != want {
		t.Errorf("Sub = %+v, want %+v", got, want)
	}
}

func TestErrorMessageOneByteKey(t *testing.T) {
	e := &Error{Op: "scan", Bucket: "b", Key: []byte{0x6b}, Err: ErrTxDone}
	if got, want := e.Error(), `storage: scan in bucket "b" key 6b (1 byte): transaction already finished`; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
