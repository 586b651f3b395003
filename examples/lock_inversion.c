/* SPDX-License-Identifier: MIT */
/*
 * The lock-order checker catches an AB/BA deadlock before it happens. A
 * transfer locks the source account, then the destination. One thread
 * transfers from checking to savings, another, later, from savings to
 * checking: run one after the other they never hang, but run together
 * they could each hold one lock and wait for the other for ever. The
 * checker sees the second order invert the first and reports it, with
 * both acquisition sites, the first time it happens.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <weft/debug.h>
#include <weft/weft.h>

#include "example.h"

typedef struct account {
    weft_mutex_t lock;
    long balance;
    const char *name;
} account_t;

typedef struct transfer {
    account_t *from;
    account_t *to;
    long amount;
} transfer_t;

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static char report[8192];
static int nreports;

static void
on_report(void *ctx, const char *kind, const char *text)
{
    (void)ctx;
    pthread_mutex_lock(&report_lock);
    if (strcmp(kind, "lock-order") == 0) {
        snprintf(report, sizeof report, "%s", text);
        nreports++;
    }
    pthread_mutex_unlock(&report_lock);
}

static void *
do_transfer(void *arg)
{
    transfer_t *t = arg;
    EX_OK(weft_mutex_lock(&t->from->lock)); /* the order bug: by argument */
    EX_OK(weft_mutex_lock(&t->to->lock));
    t->from->balance -= t->amount;
    t->to->balance += t->amount;
    weft_mutex_unlock(&t->to->lock);
    weft_mutex_unlock(&t->from->lock);
    return NULL;
}

static void
run(const char *name, transfer_t *t)
{
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    weft_thread_t *th = NULL;
    o.name = name;
    EX_OK(weft_thread_create(&o, do_transfer, t, &th));
    EX_OK(weft_thread_join(th, NULL));
}

int
main(void)
{
    account_t checking = {WEFT_MUTEX_INIT, 100, "checking"};
    account_t savings = {WEFT_MUTEX_INIT, 100, "savings"};
    transfer_t t1 = {&checking, &savings, 30};
    transfer_t t2 = {&savings, &checking, 10};

    weft_deadlock_set_hook(on_report, NULL);
    weft_lockorder_enable(true);
    printf("checking lock %p, savings lock %p\n", (void *)&checking.lock,
           (void *)&savings.lock);

    run("payroll", &t1);
    EX_CHECK(weft_lockorder_reports() == 0, "one order alone is fine");
    run("refund", &t2); /* inverts it: reported, but nothing hangs */
    EX_CHECK(weft_lockorder_reports() == 1, "the inversion is reported");
    run("payroll-2", &t1);
    run("refund-2", &t2);
    EX_CHECK(weft_lockorder_reports() == 1, "each cycle is reported once");
    EX_CHECK(checking.balance == 60 && savings.balance == 140,
             "balances %ld %ld", checking.balance, savings.balance);

    pthread_mutex_lock(&report_lock);
    EX_CHECK(nreports == 1, "the hook got %d reports", nreports);
    EX_CHECK(strstr(report, "thread \"refund\"") != NULL &&
                 strstr(report, "thread \"payroll\"") != NULL,
             "the report names both threads:\n%s", report);
    printf("the checker reported:\n%s\n", report);
    pthread_mutex_unlock(&report_lock);
    weft_lockorder_enable(false);
    return 0;
}
