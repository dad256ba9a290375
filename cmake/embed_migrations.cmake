# Writes OUT: a C++ file holding every schema/NNN_*.sql file (FILES, a list) as a string, in
# order.
set(files ${FILES})
list(SORT files)
set(body "")
foreach(f ${files})
  get_filename_component(name ${f} NAME)
  file(READ ${f} sql)
  string(APPEND body "    {\"${name}\", R\"imgbatch_sql(${sql})imgbatch_sql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp "// Generated from schema/*.sql by cmake/embed_migrations.cmake. Do not edit.\n#include \"jobs/migrations.hpp\"\n\nnamespace imgbatch::jobs {\nconst std::vector<Migration>& migrations() {\n    static const std::vector<Migration> all = {\n${body}    };\n    return all;\n}\n}  // namespace imgbatch::jobs\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
