// Package notify fans out "this group's log grew" events to the watchers of
// one Store (ds.Store.Watch): each watcher has its own goroutine and a set
// of pending group IDs, so that a slow watcher never blocks an appender and
// a notification is coalesced, never lost.
package notify
