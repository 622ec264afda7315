"""What tests share: fake /proc trees, workload programs the live tests start, synthetic
recordings and small helpers. Test files import from here and from conftest, never from
one another."""
