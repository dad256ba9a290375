// Placeholder until the command line lands (owned by the CLI work).
int main() { return 2; }
