/* SPDX-License-Identifier: MIT */
/*
 * The re-entrant lock lesson: an object whose methods lock it and call each
 * other, and a recursive function, both taking the same weft_rlock again and
 * again. A plain mutex would deadlock there; the rlock counts the depth and is
 * free only after as many releases as acquisitions. Only the owner may
 * release it: another thread gets WEFT_EPERM.
 */
#include <stdio.h>

#include <weft/weft.h>

#include "example.h"

/* A bank account whose public functions all lock it, and call each other. */
typedef struct account {
    weft_rlock_t lock;
    long balance;
    unsigned deepest; /* the largest rlock depth seen, for the printout */
} account_t;

static void
note_depth(account_t *a)
{
    unsigned d = weft_rlock_depth(&a->lock);
    if (d > a->deepest) {
        a->deepest = d;
    }
}

static long
account_balance(account_t *a)
{
    EX_OK(weft_rlock_acquire(&a->lock));
    note_depth(a);
    long b = a->balance;
    EX_OK(weft_rlock_release(&a->lock));
    return b;
}

static void
account_add(account_t *a, long amount)
{
    EX_OK(weft_rlock_acquire(&a->lock));
    note_depth(a);
    a->balance += amount;
    EX_OK(weft_rlock_release(&a->lock));
}

/* Check and debit as one step: the balance cannot change between the check
 * and the debit, because the caller keeps the lock across both calls. */
static int
account_withdraw(account_t *a, long amount)
{
    int ok = 0;

    EX_OK(weft_rlock_acquire(&a->lock));
    note_depth(a);
    if (account_balance(a) >= amount) {
        account_add(a, -amount);
        ok = 1;
    }
    EX_OK(weft_rlock_release(&a->lock));
    return ok;
}

/* Recursion: each level takes the lock once more. Returns the depth seen at
 * the bottom. */
static unsigned
descend(weft_rlock_t *lock, unsigned levels)
{
    EX_OK(weft_rlock_acquire(lock));
    unsigned depth = weft_rlock_depth(lock);
    printf("  level %u: depth %u\n", levels, depth);
    unsigned bottom = levels > 1 ? descend(lock, levels - 1) : depth;
    EX_OK(weft_rlock_release(lock));
    return bottom;
}

typedef struct intruder_report {
    weft_rlock_t *lock;
    int release_rc;
    int try_rc;
    int timed_rc;
    unsigned depth_seen;
} intruder_report_t;

/* Runs in another thread while main holds the lock. */
static void *
intruder(void *arg)
{
    intruder_report_t *r = arg;

    r->depth_seen = weft_rlock_depth(r->lock);
    r->release_rc = weft_rlock_release(r->lock);
    r->try_rc = weft_rlock_try_acquire(r->lock);
    r->timed_rc =
        weft_rlock_acquire_until(r->lock, weft_deadline_in(20 * WEFT_MSEC));
    return NULL;
}

/* A second thread that takes and releases the lock: it can only get it once
 * main has released every level. */
static void *
taker(void *arg)
{
    weft_rlock_t *lock = arg;

    EX_OK(weft_rlock_acquire(lock));
    EX_CHECK(weft_rlock_depth(lock) == 1, "a new owner starts at depth 1");
    EX_OK(weft_rlock_release(lock));
    return NULL;
}

static void
show_methods(void)
{
    account_t acct = {.balance = 100};

    weft_rlock_init(&acct.lock);
    printf("1. Methods that lock the account and call each other:\n");
    int ok1 = account_withdraw(&acct, 30);
    int ok2 = account_withdraw(&acct, 500);
    printf("  withdraw 30: %s, withdraw 500: %s, balance %ld\n",
           ok1 ? "done" : "refused", ok2 ? "done" : "refused",
           account_balance(&acct));
    printf("  deepest nesting: depth %u (withdraw -> balance/add)\n",
           acct.deepest);
    EX_CHECK(ok1 && !ok2 && acct.balance == 70, "balance should be 70");
    EX_CHECK(acct.deepest == 2, "nested calls should reach depth 2, saw %u",
             acct.deepest);
    EX_CHECK(weft_rlock_depth(&acct.lock) == 0, "lock must be free again");
    weft_rlock_fini(&acct.lock);
}

static void
show_recursion(weft_rlock_t *lock)
{
    printf("\n2. A recursive function taking the lock at every level:\n");
    unsigned bottom = descend(lock, 5);
    EX_CHECK(bottom == 5, "5 levels should give depth 5, saw %u", bottom);
    EX_CHECK(weft_rlock_depth(lock) == 0, "lock must be free after return");
    printf("  back at the top: depth %u, the lock is free\n",
           weft_rlock_depth(lock));
}

static void
show_ownership(weft_rlock_t *lock)
{
    weft_thread_t *t;
    intruder_report_t r = {lock, 0, 0, 0, 0};

    printf("\n3. Only the owner may release:\n");
    EX_OK(weft_rlock_acquire(lock));
    EX_OK(weft_rlock_acquire(lock));
    printf("  main holds the lock at depth %u\n", weft_rlock_depth(lock));
    ex_start_threads(&t, 1, "intruder", intruder, &r, 0);
    ex_join_threads(&t, 1);
    printf("  another thread sees depth %u (it owns nothing)\n"
           "  its release:     %s (%s)\n"
           "  its try_acquire: %s\n"
           "  its acquire with a 20 ms deadline: %s\n",
           r.depth_seen, weft_errname(r.release_rc),
           weft_strerror(r.release_rc), weft_errname(r.try_rc),
           weft_errname(r.timed_rc));
    EX_CHECK(r.depth_seen == 0, "a non-owner sees depth 0");
    EX_CHECK(r.release_rc == WEFT_EPERM, "non-owner release must be EPERM");
    EX_CHECK(r.try_rc == WEFT_EAGAIN, "try_acquire must be EAGAIN");
    EX_CHECK(r.timed_rc == WEFT_ETIMEDOUT, "acquire_until must time out");
    EX_CHECK(weft_rlock_depth(lock) == 2, "main still holds depth 2");

    EX_OK(weft_rlock_release(lock));
    EX_OK(weft_rlock_release(lock));
    ex_start_threads(&t, 1, "taker", taker, lock, 0);
    ex_join_threads(&t, 1);
    printf("  after main released twice, another thread took it and gave it "
           "back\n");
}

int
main(void)
{
    weft_rlock_t lock;

    weft_rlock_init(&lock);
    show_methods();
    show_recursion(&lock);
    show_ownership(&lock);
    weft_rlock_fini(&lock);
    printf("\nA weft_mutex locked twice by its owner would deadlock (weft "
           "stops the program\nwith a message instead); the rlock counts "
           "instead.\n");
    return 0;
}
