// Package store is the care service's bbolt storage and scheduler: care
// plans, what care knows of each customer (from the profile, segmentation
// and loyalty feeds), each plan's pending occurrences per customer with
// their durable timers, the tasks with their owner queues and timers, and
// the automatic messages handed to the webhook outbox. A timer firing, the
// task or message it makes, the contact pressure it adds and its feed
// events commit in one transaction, so every occurrence fires exactly once
// across restarts.
package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/timers"
	"rapport.dev/platform/webhook"
	"rapport.dev/services/care/domain"
)

// The bucket tree of care.db. Composite keys join their parts with a NUL
// byte (boltdb.Key); numbers are 8-byte big-endian.
//
//	care.db
//	├── meta         "schema_version" -> uint64
//	├── plans        tenant 0 plan                    -> domain.Plan (JSON, with its etag)
//	├── customers    tenant 0 customer                -> customer (JSON): time zone, owner, name, birthdays,
//	│                                                   tier, segments, loyalty tiers, activity, last contact,
//	│                                                   consent (profile's and care's), contact pressure
//	├── managers     tenant 0 owner                   -> manager (the owner's escalation target)
//	├── schedules    tenant 0 plan 0 customer         -> schedule (JSON): series anchor, last planned
//	│                                                   occurrence, pending occurrences
//	├── tasks        tenant 0 task                    -> domain.Task (JSON)
//	├── task_queue   tenant 0 owner 0 due(8) 0 task   -> empty: an owner's tasks, soonest due first
//	├── customer_tasks                                  tenant 0 customer 0 task -> empty: a customer's tasks
//	│                                                   in every state (ListTasks of one customer)
//	├── applied      tenant 0 upstream key            -> empty: feed events already applied
//	│                                                   ("profile:event:<event id>", "segmentation:<seq>", …)
//	├── plan_timers, plan_timer_of                      platform/timers, owner tenant 0 plan 0 customer:
//	│                                                   the earliest pending occurrence of the schedule
//	├── task_timers, task_timer_of                      platform/timers, owner tenant 0 task:
//	│                                                   a scheduled task falling due, or its SLA passing
//	├── webhook_*                                       platform/webhook's outbox (automatic messages)
//	├── feed, feed_cursors, feed_deadletters            platform/feed; the profile, segmentation and
//	│                                                   loyalty followers' cursors live in feed_cursors
var (
	bucketPlans     = []byte("plans")
	bucketCustomers = []byte("customers")
	bucketManagers  = []byte("managers")
	bucketSchedules = []byte("schedules")
	bucketTasks     = []byte("tasks")
	bucketQueue     = []byte("task_queue")
	bucketCustTasks = []byte("customer_tasks")
	bucketApplied   = []byte("applied")

	planTimers = timers.Set{ByDue: []byte("plan_timers"), ByOwner: []byte("plan_timer_of")}
	taskTimers = timers.Set{ByDue: []byte("task_timers"), ByOwner: []byte("task_timer_of")}
)

// SchemaVersion is the layout above. Version 2 added customer_tasks.
const SchemaVersion = 2

// Options returns the boltdb options for care.db.
func Options() boltdb.Options {
	buckets := [][]byte{bucketPlans, bucketCustomers, bucketManagers, bucketSchedules, bucketTasks, bucketQueue, bucketCustTasks, bucketApplied}
	buckets = append(buckets, planTimers.Buckets()...)
	buckets = append(buckets, taskTimers.Buckets()...)
	buckets = append(buckets, webhook.Buckets...)
	return boltdb.Options{Schema: SchemaVersion, Buckets: append(buckets, feed.Buckets...), Migrations: []boltdb.Migration{
		{From: 1, Up: addCustomerTasks},
	}}
}

// addCustomerTasks builds customer_tasks from the tasks of a version 1 file.
func addCustomerTasks(btx *bolt.Tx) error {
	idx, err := btx.CreateBucketIfNotExists(bucketCustTasks)
	if err != nil {
		return err
	}
	return btx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
		task, err := boltdb.GetJSON[domain.Task](v)
		if err != nil {
			return fmt.Errorf("task %q: %w", k, err)
		}
		tenant, _, ok := bytes.Cut(k, []byte{boltdb.Sep})
		if !ok {
			return fmt.Errorf("malformed task key %q", k)
		}
		return idx.Put(customerTaskKey(string(tenant), task.CustomerID, task.ID), nil)
	})
}

func customerTaskKey(tenant, customer, id string) []byte {
	return boltdb.Key(tenant, customer, id)
}
